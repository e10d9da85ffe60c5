/* A jitter buffer for one incoming RTP stream (one packet = one frame).
 *
 * The network side puts packets in as they arrive; the playout side calls
 * ml_jitter_get once per ptime and gets the next frame in sequence order, or
 * "lost" (conceal one frame) or "empty" (nothing is playing: silence).
 *
 * A fixed ring of frame slots indexed by sequence number, allocated once by
 * ml_jitter_create: put and get never allocate and are O(1) (a lost burst is
 * skipped in one get, O(burst)). Reordering is absorbed, duplicates dropped,
 * packets arriving after their turn dropped and counted as late.
 *
 * Playout delay: the target is the lateness of recent packets relative to the
 * fastest one (a decaying peak, so one spike counts for a few seconds), plus
 * one frame, clamped to [min_delay, max_delay]. The buffer starts playing when
 * it holds the target. A missing head frame below the target, or nothing
 * held at all, is concealed without moving on (the frame may still come), so
 * the delay grows to what the network needs; at the target it is lost; above
 * it a gap is skipped at once. When the average depth stays above the target
 * a frame is dropped every few ticks to come back down.
 *
 * The ptime is learned from timestamps (two equal timestamp steps in a row)
 * and reported: the consumer should call get at that period. */
#ifndef ML_JITTER_H
#define ML_JITTER_H

#include <stddef.h>
#include <stdint.h>

#include "rtp.h"

typedef struct ml_jitter ml_jitter;

typedef struct ml_jitter_config {
  uint32_t clock_rate; /* Hz; 0 = 8000 */
  uint32_t capacity; /* frame slots, rounded up to a power of two; 0 = 32 */
  uint32_t max_payload; /* bytes per frame; 0 = 480 (60 ms of G.711) */
  uint32_t min_delay_ms; /* 0 = 20 */
  uint32_t max_delay_ms; /* 0 = 200; clamped to what the capacity holds */
  uint32_t ptime_ms; /* first guess until learned; 0 = 20 */
} ml_jitter_config;

/* Allocate a buffer (one allocation: capacity × (max_payload + 24) bytes and
 * the state; 16 KB with the defaults). cfg may be NULL for the defaults.
 * Returns NULL on a bad config (rate outside 1..192 kHz, capacity above
 * 4096, min > max) or out of memory. */
ml_jitter *ml_jitter_create(const ml_jitter_config *cfg);
void ml_jitter_free(ml_jitter *jb);

/* Forget every packet and the learned delay, keep config, ptime and counters:
 * for a new SSRC or a sequence restart (ml_rtp_receiver_update's NEW_SSRC or
 * RESYNC). O(capacity), like the internal resync. */
void ml_jitter_reset(ml_jitter *jb);

enum ml_jitter_put_result {
  ML_JITTER_OK = 0, /* stored */
  ML_JITTER_RESYNC = 1, /* stored after flushing: the sequence jumped out of the window */
  ML_JITTER_DUPLICATE = -1, /* already stored: dropped */
  ML_JITTER_LATE = -2, /* its turn has passed: dropped */
  ML_JITTER_TOO_BIG = -3, /* payload larger than max_payload: dropped */
};

/* Put one parsed packet (the payload is copied; p's buffer may be reused at
 * once). arrival_ns: any monotonic clock, the same for every call. Returns an
 * enum ml_jitter_put_result. Feed only the audio payload type: events
 * (telephone-event) go to the DTMF receiver. */
int ml_jitter_put(ml_jitter *jb, const ml_rtp_packet *p, uint64_t arrival_ns);

enum ml_jitter_get_result {
  ML_JITTER_EMPTY = 0, /* not playing (not started, or the stream paused): play silence */
  ML_JITTER_FRAME = 1, /* a frame: out->data/len */
  ML_JITTER_LOST = 2, /* the frame for this tick is missing: conceal one ptime */
};

typedef struct ml_jitter_frame {
  const uint8_t *data; /* view into the buffer: valid until the next call on jb; NULL unless FRAME */
  size_t len;
  uint16_t seq; /* FRAME and LOST: the frame's (expected) sequence number */
  uint32_t ts; /* FRAME: its timestamp; LOST: the expected one */
  uint8_t pt, marker;
} ml_jitter_frame;

/* The frame for this tick; call once per ptime. Returns an enum
 * ml_jitter_get_result and fills *out (zeroed for EMPTY). */
int ml_jitter_get(ml_jitter *jb, ml_jitter_frame *out);

typedef struct ml_jitter_stats {
  uint64_t received; /* packets stored */
  uint64_t played; /* frames returned by get */
  uint64_t lost; /* frames never received when their turn came (LOST or skipped) */
  uint64_t concealed; /* LOST results: a lost frame, an underrun or a stretch */
  uint64_t stretched; /* LOST results that waited for a missing frame to grow the delay */
  uint64_t late, duplicates, too_big; /* packets dropped at put */
  uint64_t dropped; /* frames dropped to shrink the delay */
  uint64_t flushed; /* frames discarded by a resync or reset */
  uint64_t resyncs, underruns; /* underruns: gets that found nothing while playing */
  uint32_t buffered; /* frames held now */
  uint32_t ptime_ms; /* learned (or configured) */
  uint32_t target_ms; /* playout delay aimed at */
  uint32_t depth_ms; /* span held now, head to newest, in ptimes */
  uint32_t jitter_us; /* RFC 3550 interarrival jitter */
  uint32_t peak_us; /* decaying peak lateness the target follows */
} ml_jitter_stats;

/* Counters since create (not cleared by reset) and the current state. */
void ml_jitter_stats_get(const ml_jitter *jb, ml_jitter_stats *out);

/* The learned ptime in ms (the consumer's tick period). */
uint32_t ml_jitter_ptime_ms(const ml_jitter *jb);

#endif
