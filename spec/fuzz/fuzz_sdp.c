/* libFuzzer harness for engine/sip/sdp.c: parse; every view must lie in the
 * input and every count within its limit; negotiate; write the answer into a
 * fixed buffer and parse it back: it must be valid SDP that mirrors the
 * offer's m= lines and carries exactly what the negotiation chose. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "sdp.h"

static ml_sdp offer, answer, again;
static char out[32768];
static const uint8_t *in_data;
static size_t in_size;

static int view_in(ml_str s)
{
  if (s.n == 0) return 1;
  return (const uint8_t *)s.p >= in_data && (const uint8_t *)s.p + s.n <= in_data + in_size;
}

static void check_media(const ml_sdp_media *m)
{
  ASSERT(view_in(m->type) && view_in(m->proto) && view_in(m->fmts) && m->type.n && m->proto.n && m->fmts.n);
  ASSERT(view_in(m->conn.addr) && view_in(m->rtcp_conn.addr));
  ASSERT(m->npt <= ML_SDP_MAX_PT && m->nrtpmap <= ML_SDP_MAX_RTPMAP && m->nfmtp <= ML_SDP_MAX_FMTP);
  ASSERT(m->audio || (m->npt == 0 && m->nrtpmap == 0 && m->nfmtp == 0));
  ASSERT(m->nports >= 1 && m->ptime <= ML_SDP_MAX_PTIME && m->maxptime <= ML_SDP_MAX_PTIME);
  for (size_t i = 0; i < m->npt; i++) ASSERT(m->pt[i] <= 127);
  for (size_t i = 0; i < m->nrtpmap; i++) {
    ASSERT(view_in(m->rtpmap[i].encoding) && m->rtpmap[i].encoding.n && m->rtpmap[i].pt <= 127);
    ASSERT(m->rtpmap[i].clock > 0 && m->rtpmap[i].channels > 0);
  }
  for (size_t i = 0; i < m->nfmtp; i++) ASSERT(view_in(m->fmtp[i].params) && m->fmtp[i].params.n);
}

static void check_offer(void)
{
  ASSERT(offer.nmedia <= ML_SDP_MAX_MEDIA);
  ASSERT(view_in(offer.origin_user) && view_in(offer.sess_id) && view_in(offer.origin.addr));
  ASSERT(view_in(offer.name) && view_in(offer.conn.addr));
  ASSERT(offer.origin.addrtype == ML_SDP_IP4 || offer.origin.addrtype == ML_SDP_IP6);
  for (size_t i = 0; i < offer.nmedia; i++) {
    check_media(&offer.media[i]);
    ml_sdp_conn c = ml_sdp_media_conn(&offer, &offer.media[i]);
    ASSERT(offer.media[i].port == 0 || c.addrtype != ML_SDP_ADDR_NONE);
  }
}

static int has_pt(const ml_sdp_media *m, int pt)
{
  for (size_t i = 0; i < m->npt; i++)
    if (m->pt[i] == pt) return 1;
  return 0;
}

static void check_params(const ml_sdp_answer_params *a)
{
  ASSERT(a->media < offer.nmedia);
  const ml_sdp_media *m = &offer.media[a->media];
  ASSERT(m->audio && m->port != 0 && has_pt(m, a->pt));
  ASSERT(a->codec == ML_SDP_PCMU || a->codec == ML_SDP_PCMA);
  ASSERT(a->te_pt == -1 || (has_pt(m, a->te_pt) && a->te_pt != a->pt && !ml_sdp_events_empty(&a->events)));
  ASSERT(a->ptime == 20 || a->ptime == 30);
  ASSERT(a->dir != ML_SDP_DIR_NONE);
  ASSERT((a->dir == ML_SDP_SENDRECV || a->dir == ML_SDP_SENDONLY) == a->send);
  ASSERT((a->dir == ML_SDP_SENDRECV || a->dir == ML_SDP_RECVONLY) == a->recv);
  ASSERT(a->remote.addrtype != ML_SDP_ADDR_NONE && view_in(a->remote.addr) && a->remote_port == m->port);
}

/* the answer we wrote, as the offerer will read it */
static void check_answer(const ml_sdp_answer_params *a, int n)
{
  ASSERT(ml_sdp_parse(&answer, out, (size_t)n) == ML_SDP_OK);
  ASSERT(answer.nmedia == offer.nmedia && answer.sess_version == 2);
  for (size_t i = 0; i < offer.nmedia; i++) {
    const ml_sdp_media *o = &offer.media[i], *m = &answer.media[i];
    if (i != a->media) {
      ASSERT(m->port == 0 && ml_str_eq(m->type, o->type) && ml_str_eq(m->proto, o->proto));
      ASSERT(ml_str_eq(m->fmts, o->fmts));
      continue;
    }
    ASSERT(m->port == 40000 && m->npt == (a->te_pt >= 0 ? 2u : 1u) && m->pt[0] == a->pt);
    ASSERT(a->te_pt < 0 || m->pt[1] == a->te_pt);
    ASSERT(ml_sdp_media_dir(&answer, m) == a->dir && m->ptime == a->ptime);
  }
  /* the offerer negotiating our answer gets the same codec back */
  ml_sdp_caps all = {.pcmu = 1, .pcma = 1};
  ml_sdp_events_add(&all.events, 0, 255);
  ml_sdp_answer_params back;
  ASSERT(ml_sdp_negotiate(&answer, &all, &back) == ML_SDP_NEG_OK);
  ASSERT(back.media == a->media && back.pt == a->pt && back.codec == a->codec && back.te_pt == a->te_pt);
  ASSERT(memcmp(&back.events, &a->events, sizeof back.events) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > 8192) return 0;
  in_data = data, in_size = size;
  if (ml_sdp_parse(&offer, (const char *)data, size) != ML_SDP_OK) return 0;
  check_offer();
  /* the input's length picks our capabilities, so all of them get exercised */
  ml_sdp_caps caps = {.pcmu = 1, .pcma = !(size & 1), .ptime = size & 2 ? 30 : 0};
  caps.dir = size & 4 ? ML_SDP_SENDONLY : ML_SDP_DIR_NONE;
  if (!(size & 8)) ml_sdp_events_add(&caps.events, 0, 15);
  ml_sdp_answer_params a;
  ml_sdp_neg neg = ml_sdp_negotiate(&offer, &caps, &a);
  if (neg != ML_SDP_NEG_OK) {
    ASSERT(neg == ML_SDP_NEG_NO_AUDIO || neg == ML_SDP_NEG_NO_CODEC);
    return 0;
  }
  check_params(&a);
  ml_sdp_desc d;
  ml_sdp_desc_answer(&d, &offer, &a);
  d.sess_id = 1, d.sess_version = 2, d.port = 40000;
  d.addrtype = ML_SDP_IP4, d.addr = ML_STR_LIT("192.0.2.10");
  int n = ml_sdp_write(out, sizeof out, &d);
  ASSERT(n > 0 && (size_t)n < sizeof out && out[n] == '\0');
  check_answer(&a, n);
  /* a full re-parse of the offer gives the same result (no hidden state) */
  ASSERT(ml_sdp_parse(&again, (const char *)data, size) == ML_SDP_OK && again.nmedia == offer.nmedia);
  return 0;
}
