/* Local speech-to-text with pocketsphinx, off the loop (DESIGN.md §2, §6).
 *
 * An engine owns a small pool of decoders, each driven by one worker thread of
 * its own. A stream (one per talking participant) is written to on the loop
 * thread; when it has audio it waits for a free decoder and keeps it until its
 * utterance ends (ml_stt_stream_flush, or max_utt_ms of audio), so the decoder
 * follows the speaker in real time and the final result comes a few hundred
 * ms after the flush. Results (interim and final) are delivered on the loop
 * thread, through a uv_async_t.
 *
 * Why own threads rather than the libuv threadpool: a decoder is bound to an
 * utterance for as long as someone speaks (seconds), which would starve the
 * threadpool's 4 threads that getaddrinfo and file I/O need.
 *
 * Why a pool and not a decoder per stream: with the en-us LM a decoder takes
 * ~90 MB and ~0.4 s to create (and an LM cannot be shared between threads:
 * its scoring caches are written on every lookup). With a JSGF grammar it is
 * ~30 MB and ~0.1 s.
 *
 * Bounds: each stream queues at most buffer_ms of audio not yet decoded;
 * beyond that, writes drop the newest samples and count them (the stream
 * waited too long for a decoder: the pool is too small for the load).
 *
 * Cepstral mean normalisation (the decoder's estimate of the channel) is kept
 * per stream and restored on whichever decoder takes its next utterance, so
 * one speaker's channel never leaks into another's decode; a new stream starts
 * from the engine's latest estimate (the last utterance that produced words),
 * which matters: a cold estimate costs the first utterance most of its words.
 * So an utterance that starts with no estimate at all (the engine's first,
 * and any stream opened before one produced words) keeps its audio (at most
 * buffer_ms) and is decoded a second time at its end, with the mean of its
 * own frames: its final result comes a pass later (~0.3 x its length with
 * the LM, ~0.03 x with a grammar); its interim results are the first pass's.
 *
 * Every function here is called on the loop thread. */
#ifndef ML_STT_SPHINX_H
#define ML_STT_SPHINX_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define ML_STT_SPHINX_MODEL "/usr/share/pocketsphinx/model/en-us" /* Debian's pocketsphinx-en-us */
#define ML_STT_RATE 16000

typedef struct ml_stt_sphinx_config {
  const char *hmm; /* acoustic model dir; NULL: ML_STT_SPHINX_MODEL "/en-us" */
  const char *lm; /* language model; NULL: ML_STT_SPHINX_MODEL "/en-us.lm.bin" */
  const char *dict; /* pronunciations; NULL: ML_STT_SPHINX_MODEL "/cmudict-en-us.dict" */
  const char *jsgf; /* a JSGF grammar file: decode against it instead of the LM */
  unsigned pool; /* decoders (= worker threads) */
  unsigned buffer_ms; /* audio a stream may queue undecoded */
  unsigned partial_ms; /* an interim result at most every this much audio; 0: none */
  unsigned max_utt_ms; /* an utterance this long ends by itself; 0: no limit */
} ml_stt_sphinx_config;

typedef struct ml_stt_sphinx ml_stt_sphinx;
typedef struct ml_stt_stream ml_stt_stream;

/* text is never NULL ("" when nothing was recognised); it is valid only during
 * the call. Each flush yields exactly one final result, in flush order. */
typedef void (*ml_stt_result_cb)(ml_stt_stream *st, const char *text, int is_final, void *ud);

typedef struct ml_stt_stream_stats {
  uint64_t written; /* samples accepted */
  uint64_t dropped; /* samples refused: the buffer was full */
  uint64_t decoded; /* samples the decoder has processed */
  unsigned utterances; /* final results produced */
} ml_stt_stream_stats;

/* pool 1, buffer 10 s, interim results every 500 ms, utterances up to 30 s */
void ml_stt_sphinx_config_default(ml_stt_sphinx_config *cfg);

/* Check the model files and start the workers, which create their decoders in
 * the background. cfg NULL: the defaults. Returns NULL with a message in err
 * when a file is missing or the config is invalid. */
ml_stt_sphinx *ml_stt_sphinx_create(uv_loop_t *loop, const ml_stt_sphinx_config *cfg, char *err,
                                    size_t errcap);

/* Cancel in-flight work, close every stream still open (their pointers die,
 * no callback runs any more), join the workers, close the async handle; then
 * on_closed(data) runs from the loop. */
void ml_stt_sphinx_close(ml_stt_sphinx *s, void (*on_closed)(void *data), void *data);

/* Seconds each decoder took to create, once ready (0 before); for figures. */
double ml_stt_sphinx_init_seconds(ml_stt_sphinx *s);

ml_stt_stream *ml_stt_stream_open(ml_stt_sphinx *s, ml_stt_result_cb on_result, void *ud);
/* Queue 16 kHz mono samples (any count; 20 ms frames are typical). Copies and
 * returns at once; returns how many samples fitted (the rest are dropped). */
size_t ml_stt_stream_write(ml_stt_stream *st, const int16_t *pcm, size_t n);
/* End the utterance here: its final result follows. */
void ml_stt_stream_flush(ml_stt_stream *st);
/* No callback for st runs after this returns; an utterance in progress is
 * abandoned. */
void ml_stt_stream_close(ml_stt_stream *st);
void ml_stt_stream_stats_get(ml_stt_stream *st, ml_stt_stream_stats *out);

#endif
