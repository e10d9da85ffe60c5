/* N−1 audio mixing for one room: 16 kHz mono, 20 ms frames (320 samples).
 *
 * Every tick each participant may publish one frame; the mixer then gives
 * each listening participant the sum of everybody else's frames. It sums all
 * contributions once into a 32-bit accumulator and subtracts each listener's
 * own, so a tick costs O(N) frames, not O(N²). Sums saturate to int16 at the
 * end only, so a loud participant clips what others hear, not the arithmetic.
 *
 * Participants are slots of a table sized at create: join/leave/publish/mix
 * never allocate. A publish-only participant (hold music, a file playing into
 * the room, a recorder's tap in reverse) joins with listens = 0 and costs no
 * output work. */
#ifndef ML_MIXER_H
#define ML_MIXER_H

#include <stddef.h>
#include <stdint.h>

#define ML_MIX_RATE 16000
#define ML_MIX_FRAME 320 /* samples per tick: 20 ms at 16 kHz */
#define ML_MIX_MAX 65535 /* participants: N × 32767 still fits the accumulator */

typedef struct ml_mixer ml_mixer;

/* A room for up to max_participants (1..ML_MIX_MAX); about 1.3 KB each.
 * Returns NULL on a bad size or out of memory. */
ml_mixer *ml_mixer_create(uint32_t max_participants);
void ml_mixer_free(ml_mixer *m);

/* Take a free slot. listens: 1 for a participant that hears the room, 0 for a
 * publish-only track. Returns the participant id (>= 0), or -1 when full. The
 * participant starts unmuted at unity gain with nothing published. */
int ml_mixer_join(ml_mixer *m, int listens);

/* Free the slot; its id may be handed out again by the next join. */
void ml_mixer_leave(ml_mixer *m, int id);

/* The participant's frame for this tick (ML_MIX_FRAME samples, copied). Not
 * publishing in a tick is silence. Publishing twice keeps the last frame. */
void ml_mixer_publish(ml_mixer *m, int id, const int16_t *frame);

/* What the participant contributes: gain is linear (1.0 = unchanged, up to
 * 8.0; the scaled sample saturates), mute contributes silence but still
 * hears the others. Both last until changed. */
void ml_mixer_set_gain(ml_mixer *m, int id, float gain);
void ml_mixer_set_mute(ml_mixer *m, int id, int muted);

/* Mix this tick: every listener's output becomes the others' sum, and the
 * published frames are consumed (the next tick starts silent). */
void ml_mixer_mix(ml_mixer *m);

/* A listener's mix from the last ml_mixer_mix (ML_MIX_FRAME samples), valid
 * until the next mix, leave or free; silence before the first mix. NULL for
 * a free slot or a publish-only participant. */
const int16_t *ml_mixer_output(const ml_mixer *m, int id);

/* Participants joined (listening or not). */
uint32_t ml_mixer_count(const ml_mixer *m);

#endif
