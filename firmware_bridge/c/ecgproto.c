/*
 * ecgproto.c: reference C99 implementation of ECG wire protocol v1. See ecgproto.h and PROTOCOL.md.
 * COBS after Cheshire & Baker (1999); output identical to the Python `cobs` package (no trailing 0x01
 * group after a final full 0xFF group).
 */
#include "ecgproto.h"

#include <string.h>

/* ---- CRC-16/CCITT-FALSE (bitwise: no table, small flash) ---------------------------------------- */

uint16_t ecgp_crc16_update(uint16_t crc, const uint8_t *data, size_t len)
{
    size_t i;
    int bit;
    uint32_t c = crc; /* unsigned arithmetic throughout: no implicit int promotions */
    for (i = 0; i < len; i++) {
        c ^= (uint32_t)data[i] << 8;
        for (bit = 0; bit < 8; bit++) {
            c = (c & 0x8000u) ? ((c << 1) ^ 0x1021u) : (c << 1);
        }
        c &= 0xFFFFu;
    }
    return (uint16_t)c;
}

uint16_t ecgp_crc16(const uint8_t *data, size_t len)
{
    return ecgp_crc16_update(0xFFFFu, data, len);
}

/* ---- streaming COBS encoder into a caller buffer ------------------------------------------------ */

typedef struct {
    uint8_t *out;
    size_t cap;
    size_t pos;      /* next write position */
    size_t code_idx; /* where the current group's code byte goes */
    uint8_t code;    /* 1 + bytes in the current group */
    uint8_t open;    /* a group is open (0 right after a full 0xFF group) */
    uint8_t err;
    uint16_t crc;
} cobs_writer;

static void cw_init(cobs_writer *w, uint8_t *out, size_t cap)
{
    w->out = out;
    w->cap = cap;
    w->pos = 1;
    w->code_idx = 0;
    w->code = 1;
    w->open = 1;
    w->err = (uint8_t)(cap < 1u);
    w->crc = 0xFFFFu;
}

static void cw_put(cobs_writer *w, uint8_t b)
{
    if (w->err) {
        return;
    }
    if (!w->open) { /* the previous group was full: start the next one only when a byte comes */
        if (w->pos >= w->cap) {
            w->err = 1;
            return;
        }
        w->code_idx = w->pos++;
        w->code = 1;
        w->open = 1;
    }
    if (b == 0u) {
        w->out[w->code_idx] = w->code;
        if (w->pos >= w->cap) {
            w->err = 1;
            return;
        }
        w->code_idx = w->pos++;
        w->code = 1;
    } else {
        if (w->pos >= w->cap) {
            w->err = 1;
            return;
        }
        w->out[w->pos++] = b;
        w->code++;
        if (w->code == 0xFFu) {
            w->out[w->code_idx] = 0xFFu;
            w->open = 0;
        }
    }
}

/* Close the last group; returns the encoded length (without delimiter) or ECGP_ERR_BUFFER. */
static int32_t cw_close(cobs_writer *w)
{
    if (w->err) {
        return ECGP_ERR_BUFFER;
    }
    if (w->open) {
        w->out[w->code_idx] = w->code;
    }
    return (int32_t)w->pos;
}

int32_t ecgp_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    cobs_writer w;
    size_t i;
    cw_init(&w, out, cap);
    for (i = 0; i < len; i++) {
        cw_put(&w, in[i]);
    }
    return cw_close(&w);
}

int32_t ecgp_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t r = 0, w = 0, i;
    while (r < len) {
        uint8_t code = in[r++];
        if (code == 0u || (size_t)(code - 1u) > len - r) {
            return ECGP_ERR_COBS; /* zero inside, or a group running past the end */
        }
        for (i = 1; i < code; i++) {
            uint8_t b = in[r++];
            if (b == 0u) {
                return ECGP_ERR_COBS;
            }
            if (w >= cap) {
                return ECGP_ERR_BUFFER;
            }
            out[w++] = b; /* w < r always, so decoding in place is safe */
        }
        if (code != 0xFFu && r < len) {
            if (w >= cap) {
                return ECGP_ERR_BUFFER;
            }
            out[w++] = 0u;
        }
    }
    return (int32_t)w;
}

/* ---- frame encoding ---------------------------------------------------------------------------- */

static void put_byte(cobs_writer *w, uint8_t b)
{
    w->crc = ecgp_crc16_update(w->crc, &b, 1u);
    cw_put(w, b);
}

static void put_u16(cobs_writer *w, uint16_t v)
{
    put_byte(w, (uint8_t)(v & 0xFFu));
    put_byte(w, (uint8_t)(v >> 8));
}

static void put_u32(cobs_writer *w, uint32_t v)
{
    put_u16(w, (uint16_t)(v & 0xFFFFu));
    put_u16(w, (uint16_t)(v >> 16));
}

static void put_bytes(cobs_writer *w, const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        put_byte(w, p[i]);
    }
}

static void begin_frame(cobs_writer *w, uint8_t *out, size_t cap, uint8_t type, uint16_t seq, uint16_t plen)
{
    cw_init(w, out, cap);
    put_byte(w, (uint8_t)ECGP_VERSION);
    put_byte(w, type);
    put_u16(w, seq);
    put_u16(w, plen);
}

static int32_t end_frame(cobs_writer *w)
{
    uint16_t crc = w->crc;
    int32_t n;
    cw_put(w, (uint8_t)(crc & 0xFFu));
    cw_put(w, (uint8_t)(crc >> 8));
    n = cw_close(w);
    if (n < 0) {
        return n;
    }
    if ((size_t)n >= w->cap) {
        return ECGP_ERR_BUFFER;
    }
    w->out[n] = 0u; /* delimiter */
    return n + 1;
}

static int leads_valid(const uint8_t *leads, size_t n)
{
    uint16_t seen = 0;
    size_t i;
    if (n < 1u || n > ECGP_MAX_CHANNELS || leads == NULL) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (leads[i] > 11u || (seen & (1u << leads[i]))) {
            return 0;
        }
        seen = (uint16_t)(seen | (1u << leads[i]));
    }
    return 1;
}

int32_t ecgp_encode_hello(const ecgp_hello_t *h, uint16_t seq, uint8_t *out, size_t cap)
{
    cobs_writer w;
    size_t plen;
    if (h == NULL || h->fs_hz == 0u || h->lsb_nv == 0u || !leads_valid(h->channel_leads, h->n_channels) ||
        (h->device_id_len > 0u && h->device_id == NULL) ||
        !ecgp_utf8_valid((const uint8_t *)h->device_id, h->device_id_len) ||
        h->device_id_len > ECGP_MAX_PAYLOAD - ECGP_HELLO_PAYLOAD(h->n_channels, 0u)) {
        return ECGP_ERR_ARG;
    }
    plen = ECGP_HELLO_PAYLOAD(h->n_channels, h->device_id_len);
    begin_frame(&w, out, cap, ECGP_HELLO, seq, (uint16_t)plen);
    put_u16(&w, h->fs_hz);
    put_byte(&w, h->n_channels);
    put_u32(&w, h->lsb_nv);
    put_bytes(&w, h->channel_leads, h->n_channels);
    put_byte(&w, h->fw_major);
    put_byte(&w, h->fw_minor);
    put_bytes(&w, (const uint8_t *)h->device_id, h->device_id_len);
    return end_frame(&w);
}

int16_t ecgp_sample(const ecgp_samples_t *s, unsigned sample, unsigned channel)
{
    size_t k = (size_t)sample * s->n_channels + channel;
    if (s->samples != NULL) {
        return s->samples[k];
    }
    return (int16_t)(uint16_t)((uint16_t)s->samples_le[2u * k] | ((uint16_t)s->samples_le[2u * k + 1u] << 8));
}

int32_t ecgp_encode_samples(const ecgp_samples_t *s, uint16_t seq, uint8_t *out, size_t cap)
{
    cobs_writer w;
    size_t i, n;
    if (s == NULL || s->n_channels < 1u || s->n_channels > ECGP_MAX_CHANNELS ||
        (s->lead_off >> s->n_channels) != 0u ||
        (s->n_samples > 0u && s->samples == NULL && s->samples_le == NULL)) {
        return ECGP_ERR_ARG;
    }
    n = (size_t)s->n_samples * s->n_channels;
    begin_frame(&w, out, cap, ECGP_SAMPLES, seq, (uint16_t)ECGP_SAMPLES_PAYLOAD(s->n_samples, s->n_channels));
    put_u32(&w, s->first_sample);
    put_byte(&w, s->n_channels);
    put_byte(&w, s->n_samples);
    put_u16(&w, s->lead_off);
    for (i = 0; i < n && !w.err; i++) {
        put_u16(&w, (uint16_t)ecgp_sample(s, (unsigned)(i / s->n_channels), (unsigned)(i % s->n_channels)));
    }
    return end_frame(&w);
}

int32_t ecgp_encode_event(const ecgp_event_t *e, uint16_t seq, uint8_t *out, size_t cap)
{
    cobs_writer w;
    if (e == NULL || e->detail_len > ECGP_MAX_PAYLOAD - ECGP_EVENT_PAYLOAD(0u) ||
        (e->detail_len > 0u && e->detail == NULL)) {
        return ECGP_ERR_ARG;
    }
    begin_frame(&w, out, cap, ECGP_EVENT, seq, (uint16_t)ECGP_EVENT_PAYLOAD(e->detail_len));
    put_byte(&w, e->code);
    put_u32(&w, e->sample);
    put_bytes(&w, e->detail, e->detail_len);
    return end_frame(&w);
}

int32_t ecgp_encode_start(const ecgp_start_t *s, uint16_t seq, uint8_t *out, size_t cap)
{
    cobs_writer w;
    int has_fs = s != NULL && s->has_fs;
    if (has_fs && s->fs_hz == 0u) {
        return ECGP_ERR_ARG;
    }
    begin_frame(&w, out, cap, ECGP_START, seq, has_fs ? 2u : 0u);
    if (has_fs) {
        put_u16(&w, s->fs_hz);
    }
    return end_frame(&w);
}

int32_t ecgp_encode_stop(uint16_t seq, uint8_t *out, size_t cap)
{
    cobs_writer w;
    begin_frame(&w, out, cap, ECGP_STOP, seq, 0u);
    return end_frame(&w);
}

int32_t ecgp_encode_hello_request(uint16_t seq, uint8_t *out, size_t cap)
{
    cobs_writer w;
    begin_frame(&w, out, cap, ECGP_HELLO_REQUEST, seq, 0u);
    return end_frame(&w);
}

/* ---- frame decoding ---------------------------------------------------------------------------- */

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] | ((uint16_t)p[1] << 8));
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)rd16(p) | ((uint32_t)rd16(p + 2) << 16);
}

int ecgp_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0, k, n;
    while (i < len) {
        uint8_t c = s[i];
        uint8_t lo = 0x80u, hi = 0xBFu; /* allowed range of the second byte */
        if (c < 0x80u) {
            i++;
            continue;
        } else if (c >= 0xC2u && c <= 0xDFu) {
            n = 1;
        } else if (c >= 0xE0u && c <= 0xEFu) {
            n = 2;
            if (c == 0xE0u) {
                lo = 0xA0u; /* no overlongs */
            } else if (c == 0xEDu) {
                hi = 0x9Fu; /* no surrogates */
            }
        } else if (c >= 0xF0u && c <= 0xF4u) {
            n = 3;
            if (c == 0xF0u) {
                lo = 0x90u;
            } else if (c == 0xF4u) {
                hi = 0x8Fu; /* nothing above U+10FFFF */
            }
        } else {
            return 0;
        }
        if (len - i - 1u < n || s[i + 1u] < lo || s[i + 1u] > hi) {
            return 0;
        }
        for (k = 2; k <= n; k++) {
            if (s[i + k] < 0x80u || s[i + k] > 0xBFu) {
                return 0;
            }
        }
        i += n + 1u;
    }
    return 1;
}

static int32_t parse_payload(ecgp_frame_t *f)
{
    const uint8_t *p = f->payload;
    size_t n = f->payload_len, nc;
    switch (f->type) {
    case ECGP_HELLO: {
        ecgp_hello_t *h = &f->u.hello;
        if (n < 7u) {
            return ECGP_ERR_FORMAT;
        }
        h->fs_hz = rd16(p);
        h->n_channels = p[2];
        h->lsb_nv = rd32(p + 3);
        nc = h->n_channels;
        if (nc < 1u || nc > ECGP_MAX_CHANNELS || n < ECGP_HELLO_PAYLOAD(nc, 0u)) {
            return ECGP_ERR_FORMAT;
        }
        h->channel_leads = p + 7;
        h->fw_major = p[7 + nc];
        h->fw_minor = p[8 + nc];
        h->device_id = (const char *)(p + 9 + nc);
        h->device_id_len = n - ECGP_HELLO_PAYLOAD(nc, 0u);
        if (h->fs_hz == 0u || h->lsb_nv == 0u || !leads_valid(h->channel_leads, nc) ||
            !ecgp_utf8_valid(p + 9 + nc, h->device_id_len)) {
            return ECGP_ERR_FORMAT;
        }
        return ECGP_OK;
    }
    case ECGP_SAMPLES: {
        ecgp_samples_t *s = &f->u.samples;
        if (n < 8u) {
            return ECGP_ERR_FORMAT;
        }
        s->first_sample = rd32(p);
        s->n_channels = p[4];
        s->n_samples = p[5];
        s->lead_off = rd16(p + 6);
        s->samples = NULL;
        s->samples_le = p + 8;
        if (s->n_channels < 1u || s->n_channels > ECGP_MAX_CHANNELS ||
            n != ECGP_SAMPLES_PAYLOAD((size_t)s->n_samples, (size_t)s->n_channels) ||
            (s->lead_off >> s->n_channels) != 0u) {
            return ECGP_ERR_FORMAT;
        }
        return ECGP_OK;
    }
    case ECGP_EVENT:
        if (n < 5u) {
            return ECGP_ERR_FORMAT;
        }
        f->u.event.code = p[0];
        f->u.event.sample = rd32(p + 1);
        f->u.event.detail = p + 5;
        f->u.event.detail_len = n - 5u;
        return ECGP_OK;
    case ECGP_START:
        f->u.start.has_fs = (uint8_t)(n == 2u);
        f->u.start.fs_hz = n == 2u ? rd16(p) : 0u;
        return (n == 0u || (n == 2u && f->u.start.fs_hz != 0u)) ? ECGP_OK : ECGP_ERR_FORMAT;
    case ECGP_STOP:
    case ECGP_HELLO_REQUEST:
        return n == 0u ? ECGP_OK : ECGP_ERR_FORMAT;
    default:
        return ECGP_ERR_FORMAT;
    }
}

int32_t ecgp_parse_frame(const uint8_t *frame, size_t len, ecgp_frame_t *out)
{
    memset(out, 0, sizeof *out);
    if (len < ECGP_MIN_FRAME_SIZE) {
        return ECGP_ERR_LENGTH;
    }
    out->payload_len = rd16(frame + 4);
    if ((size_t)out->payload_len + ECGP_MIN_FRAME_SIZE != len) {
        return ECGP_ERR_LENGTH;
    }
    if (ecgp_crc16(frame, len - ECGP_CRC_SIZE) != rd16(frame + len - ECGP_CRC_SIZE)) {
        return ECGP_ERR_CRC;
    }
    out->version = frame[0];
    out->type = frame[1];
    out->seq = rd16(frame + 2);
    out->payload = frame + ECGP_HEADER_SIZE;
    if (out->version != ECGP_VERSION) {
        return ECGP_ERR_FORMAT;
    }
    return parse_payload(out);
}

int32_t ecgp_decode_frame(uint8_t *segment, size_t len, ecgp_frame_t *out)
{
    int32_t n = ecgp_cobs_decode(segment, len, segment, len);
    if (n < 0) {
        memset(out, 0, sizeof *out);
        return n;
    }
    return ecgp_parse_frame(segment, (size_t)n, out);
}

/* ---- incremental receiver ---------------------------------------------------------------------- */

void ecgp_rx_init(ecgp_rx_t *rx, uint8_t *buf, size_t cap)
{
    memset(rx, 0, sizeof *rx);
    rx->buf = buf;
    rx->cap = cap;
    rx->first = 1;
}

static void rx_count_seq(ecgp_rx_t *rx, const ecgp_frame_t *f)
{
    uint16_t skipped;
    if (f->type == ECGP_HELLO && f->seq == 0u) { /* a device (re)starting its counter */
        if (rx->have_seq && rx->next_seq != 0u) {
            rx->stats.seq_resets++;
        }
        rx->have_seq = 0;
    }
    if (rx->have_seq && f->seq != rx->next_seq) {
        skipped = (uint16_t)(f->seq - rx->next_seq);
        if (skipped < 0x8000u) {
            rx->stats.seq_gaps++;
            rx->stats.frames_lost += skipped;
        } else {
            rx->stats.seq_resets++;
        }
    }
    rx->have_seq = 1;
    rx->next_seq = (uint16_t)(f->seq + 1u);
}

int ecgp_rx_feed(ecgp_rx_t *rx, uint8_t byte, ecgp_frame_t *out)
{
    size_t len;
    int32_t r;
    uint8_t first;
    if (byte != 0u) {
        if (rx->discarding) {
            rx->stats.bytes_discarded++;
            return 0;
        }
        if (rx->len >= rx->cap) {
            rx->stats.overflow++;
            rx->stats.bytes_discarded += (uint32_t)rx->len + 1u;
            rx->len = 0;
            rx->discarding = 1;
            rx->first = 0;
            return ECGP_ERR_OVERFLOW;
        }
        rx->buf[rx->len++] = byte;
        return 0;
    }
    first = rx->first;
    rx->first = 0;
    if (rx->discarding) {
        rx->discarding = 0;
        return 0;
    }
    if (rx->len == 0u) {
        return 0; /* empty segment: ignored */
    }
    len = rx->len;
    rx->len = 0;
    r = ecgp_decode_frame(rx->buf, len, out);
    if (r < 0) {
        rx->stats.bytes_discarded += (uint32_t)len;
        if (first) {
            return 0; /* tail of a frame sent before we listened: not an error */
        }
        switch (r) {
        case ECGP_ERR_COBS:
            rx->stats.cobs_errors++;
            break;
        case ECGP_ERR_LENGTH:
            rx->stats.length_errors++;
            break;
        case ECGP_ERR_CRC:
            rx->stats.crc_errors++;
            break;
        default:
            rx->stats.format_errors++;
            break;
        }
        return (int)r;
    }
    rx_count_seq(rx, out);
    rx->stats.frames_ok++;
    return 1;
}
