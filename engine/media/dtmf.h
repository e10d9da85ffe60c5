/* RFC 4733 telephone-events (DTMF over RTP): the 4-byte payload, a receiver
 * that turns a stream of event packets into digits, and a sender that turns a
 * digit into the packet sequence of one event.
 *
 * An event is identified by its RTP timestamp (its start time): every packet
 * of it, updates and the three end packets alike, repeats that timestamp.
 * Pure C, no allocation: both state structs are embedded in the stream. */
#ifndef ML_DTMF_H
#define ML_DTMF_H

#include <stddef.h>
#include <stdint.h>

#define ML_DTMF_PAYLOAD_SIZE 4
#define ML_DTMF_END_PACKETS 3 /* the end packet is sent three times (RFC 4733 §2.5.1.4) */

typedef struct ml_dtmf_event {
  uint8_t event; /* 0-9, 10 '*', 11 '#', 12-15 'A'-'D', others are not digits */
  uint8_t end; /* E bit: the last packets of the event */
  uint8_t volume; /* power in -dBm0, 0..63 */
  uint16_t duration; /* in RTP clock units since the event's timestamp */
} ml_dtmf_event;

/* Parse a telephone-event payload (its first 4 bytes; more is tolerated).
 * Returns 0, or -1 when len < 4. */
int ml_dtmf_parse(const uint8_t *payload, size_t len, ml_dtmf_event *out);

/* Write the 4-byte payload of ev. */
void ml_dtmf_write(uint8_t out[ML_DTMF_PAYLOAD_SIZE], const ml_dtmf_event *ev);

/* event code -> '0'..'9', '*', '#', 'A'..'D'; 0 for codes above 15 */
char ml_dtmf_digit(uint8_t event);

/* digit ('a'..'d' too) -> event code, or -1 */
int ml_dtmf_event_code(char digit);

/* ---- receiver -------------------------------------------------------------
 *
 * Reports a digit at the first packet seen of each event, whichever it is (the
 * start may be lost), and never again for that event: updates, the 3× end,
 * duplicates and reordered packets of recent events are recognised by their
 * timestamp. An event longer than 0xFFFF clock units continues with a new
 * timestamp and no marker (§2.5.1.3): that is not a new digit either. */
#define ML_DTMF_HISTORY 8

typedef struct ml_dtmf_receiver {
  uint32_t recent_ts[ML_DTMF_HISTORY]; /* timestamps of the last events reported */
  unsigned recent_len, recent_next;
  uint8_t have_event; /* active_* describe the newest event seen */
  uint8_t active; /* the newest event has not ended yet */
  uint8_t active_event;
  uint32_t active_ts;
  uint16_t active_duration;
  uint64_t digits, packets, malformed;
} ml_dtmf_receiver;

void ml_dtmf_receiver_init(ml_dtmf_receiver *r);

/* Feed the payload of one telephone-event packet with its RTP timestamp and
 * marker bit. Returns 1 and sets *digit when this packet reveals a new digit,
 * 0 when it belongs to an event already reported (or is not a digit: events
 * above 15 are tracked but not reported), -1 when the payload is short. */
int ml_dtmf_receiver_feed(ml_dtmf_receiver *r, uint32_t ts, int marker, const uint8_t *payload, size_t len,
                          char *digit);

/* ---- sender ----------------------------------------------------------------
 *
 * One event: the first packet carries the marker, one update per ptime with
 * the growing duration, then the end packet three times with the final
 * duration; all with the event's timestamp. The caller sends one packet per
 * ptime (ml_rtp_sender_write_at with packet.ts, then ml_rtp_sender_advance by
 * the ptime) until ml_dtmf_sender_next returns 0. */
typedef struct ml_dtmf_sender {
  uint8_t event, volume;
  uint32_t ts; /* the event's RTP timestamp */
  uint32_t step; /* ptime in clock units */
  uint32_t total; /* the event's duration in clock units, <= 0xFFFF */
  uint32_t sent; /* duration reported so far */
  unsigned ends_left;
  uint8_t started, active;
} ml_dtmf_sender;

typedef struct ml_dtmf_packet {
  uint8_t payload[ML_DTMF_PAYLOAD_SIZE];
  uint8_t marker, end;
  uint32_t ts;
  uint16_t duration;
} ml_dtmf_packet;

/* Prepare the event for `digit` lasting duration_ms (capped at 0xFFFF clock
 * units, about 8 s at 8 kHz), sent every ptime_ms at clock_rate Hz, starting at
 * RTP timestamp ts (the sender's media clock, ml_rtp_sender.ts). Volume is
 * 10 (-10 dBm0). Returns 0, or -1 for a bad digit or zero ptime/duration. */
int ml_dtmf_sender_start(ml_dtmf_sender *s, char digit, uint32_t duration_ms, uint32_t ptime_ms,
                         uint32_t clock_rate, uint32_t ts);

/* The next packet of the event into *out: returns 1, or 0 when the event is
 * over (the three end packets were produced). */
int ml_dtmf_sender_next(ml_dtmf_sender *s, ml_dtmf_packet *out);

/* Packets the event produces in all (for the caller's pacing). */
unsigned ml_dtmf_sender_packets(const ml_dtmf_sender *s);

#endif
