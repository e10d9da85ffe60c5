/* G.711 (ITU-T) µ-law and A-law: 8-bit companded samples <-> 16-bit linear PCM.
 *
 * Bit-exact with the ITU-T G.191 reference coder. Decoding is a 256-entry
 * table lookup, encoding a lookup in a 16 KB (µ-law) or 4 KB (A-law) table
 * built when the program or module is loaded. Stateless and allocation-free;
 * every function may be called from anywhere. */
#ifndef ML_G711_H
#define ML_G711_H

#include <stddef.h>
#include <stdint.h>

/* code -> linear sample; ±32124 is µ-law's largest magnitude, ±32256 A-law's */
extern const int16_t ml_ulaw_decode_table[256];
extern const int16_t ml_alaw_decode_table[256];

/* one sample; encoding truncates to the step, decoding returns the middle
 * of the step, so decode(encode(x)) is within about half a step of x */
uint8_t ml_ulaw_from_linear(int16_t x);
uint8_t ml_alaw_from_linear(int16_t x);
static inline int16_t ml_ulaw_to_linear(uint8_t c) { return ml_ulaw_decode_table[c]; }
static inline int16_t ml_alaw_to_linear(uint8_t c) { return ml_alaw_decode_table[c]; }

/* n samples: in[0..n) -> out[0..n). in and out must not overlap. */
void ml_ulaw_encode(uint8_t *out, const int16_t *in, size_t n);
void ml_ulaw_decode(int16_t *out, const uint8_t *in, size_t n);
void ml_alaw_encode(uint8_t *out, const int16_t *in, size_t n);
void ml_alaw_decode(int16_t *out, const uint8_t *in, size_t n);

#endif
