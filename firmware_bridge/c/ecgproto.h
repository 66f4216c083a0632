/*
 * ecgproto: reference C99 implementation of the ECG wire protocol v1 (firmware_bridge/PROTOCOL.md).
 *
 * For microcontrollers: no dynamic allocation, no global state, no libc beyond <stddef.h>/<stdint.h>/
 * <string.h>. Every function works on caller-provided buffers and returns a length (>= 0) or a negative
 * ecgp_status.
 *
 * Wire format: each frame is COBS-encoded (S. Cheshire, M. Baker, "Consistent Overhead Byte Stuffing",
 * IEEE/ACM Trans. Networking 7(2), 1999) and followed by one 0x00 delimiter. Decoded frame:
 *     version u8 (=1) | type u8 | seq u16 | payload_len u16 | payload | crc u16
 * all little-endian; crc = CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0) over
 * header and payload.
 *
 * Device side, typically:
 *     uint8_t tx[ECGP_WIRE_MAX(ECGP_SAMPLES_PAYLOAD(10, 12))];
 *     int32_t n = ecgp_encode_samples(&s, seq++, tx, sizeof tx);   // then uart_write(tx, n)
 *     ...
 *     static uint8_t rxbuf[32]; ecgp_rx_t rx; ecgp_rx_init(&rx, rxbuf, sizeof rxbuf);
 *     for each received byte b: if (ecgp_rx_feed(&rx, b, &f) == 1) handle f (START / STOP / HELLO_REQUEST)
 */
#ifndef ECGPROTO_H
#define ECGPROTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ECGP_VERSION 1u
#define ECGP_HEADER_SIZE 6u
#define ECGP_CRC_SIZE 2u
#define ECGP_MIN_FRAME_SIZE 8u /* header + crc, empty payload */
#define ECGP_MAX_CHANNELS 12u
#define ECGP_MAX_PAYLOAD 65535u

/* Largest COBS encoding of n bytes (without the delimiter). */
#define ECGP_COBS_MAX(n) ((n) + (n) / 254u + 1u)
/* Wire bytes (COBS + 0x00 delimiter) of a frame with a payload of p bytes, at most. */
#define ECGP_WIRE_MAX(p) (ECGP_COBS_MAX(ECGP_MIN_FRAME_SIZE + (p)) + 1u)
/* Payload sizes. */
#define ECGP_HELLO_PAYLOAD(n_channels, id_len) (9u + (n_channels) + (id_len))
#define ECGP_SAMPLES_PAYLOAD(n_samples, n_channels) (8u + 2u * (n_samples) * (n_channels))
#define ECGP_EVENT_PAYLOAD(detail_len) (5u + (detail_len))
/* A receive buffer of this size holds any host command (START with fs is the largest). */
#define ECGP_COMMAND_RX_BUFFER ECGP_COBS_MAX(ECGP_MIN_FRAME_SIZE + 2u)

enum ecgp_type {
    ECGP_HELLO = 0x01,         /* device -> host */
    ECGP_SAMPLES = 0x02,       /* device -> host */
    ECGP_EVENT = 0x03,         /* device -> host */
    ECGP_START = 0x10,         /* host -> device, optional fs_hz u16 */
    ECGP_STOP = 0x11,          /* host -> device */
    ECGP_HELLO_REQUEST = 0x12  /* host -> device */
};

enum ecgp_event_code {
    ECGP_EVENT_LEAD_OFF = 1,    /* detail: new lead_off mask, u16 */
    ECGP_EVENT_BUTTON = 2,
    ECGP_EVENT_BATTERY_LOW = 3,
    ECGP_EVENT_DEVICE_ERROR = 4 /* detail: UTF-8 message */
};

/* Return codes. The four frame errors are checked in this order (PROTOCOL.md, "Receiver rules"). */
enum ecgp_status {
    ECGP_OK = 0,
    ECGP_ERR_BUFFER = -1,   /* output buffer too small */
    ECGP_ERR_ARG = -2,      /* invalid argument to an encoder */
    ECGP_ERR_COBS = -3,     /* not valid COBS */
    ECGP_ERR_LENGTH = -4,   /* shorter than 8 bytes, or payload_len disagrees with the length */
    ECGP_ERR_CRC = -5,      /* CRC mismatch */
    ECGP_ERR_FORMAT = -6,   /* wrong version, unknown type, bad payload fields */
    ECGP_ERR_OVERFLOW = -7  /* receiver: frame longer than the receive buffer, dropped */
};

typedef struct {
    uint16_t fs_hz;                /* 1..65535 */
    uint8_t n_channels;            /* 1..12 */
    uint32_t lsb_nv;               /* nanovolts per count, >= 1 */
    const uint8_t *channel_leads;  /* n_channels distinct codes 0..11 (0=I 1=II 2=III 3=aVR 4=aVL 5=aVF 6..11=V1..V6) */
    uint8_t fw_major;
    uint8_t fw_minor;
    const char *device_id;         /* UTF-8, NOT NUL-terminated when decoded; may be NULL if len is 0 */
    size_t device_id_len;
} ecgp_hello_t;

typedef struct {
    uint32_t first_sample;      /* index of the first sample since the stream started */
    uint8_t n_channels;         /* 1..12 */
    uint8_t n_samples;          /* 0..255 */
    uint16_t lead_off;          /* bit i: channel i electrode off; bits >= n_channels must be 0 */
    const int16_t *samples;     /* encode: native int16, interleaved [n_samples][n_channels] */
    const uint8_t *samples_le;  /* decode: the same as little-endian bytes in the frame; see ecgp_sample() */
} ecgp_samples_t;

typedef struct {
    uint8_t code;            /* enum ecgp_event_code; other values are passed through */
    uint32_t sample;         /* sample index the event refers to */
    const uint8_t *detail;   /* rest of the payload */
    size_t detail_len;
} ecgp_event_t;

typedef struct {
    uint8_t has_fs;  /* 0: keep the current rate */
    uint16_t fs_hz;  /* 1..65535 when has_fs */
} ecgp_start_t;

typedef struct {
    uint8_t version;
    uint8_t type;          /* enum ecgp_type */
    uint16_t seq;
    uint16_t payload_len;
    const uint8_t *payload;
    union {
        ecgp_hello_t hello;
        ecgp_samples_t samples;
        ecgp_event_t event;
        ecgp_start_t start;
    } u;                   /* by type; STOP and HELLO_REQUEST have no fields */
} ecgp_frame_t;

/* CRC-16/CCITT-FALSE. ecgp_crc16(d, n) == ecgp_crc16_update(0xFFFF, d, n); check value 0x29B1 for "123456789". */
uint16_t ecgp_crc16_update(uint16_t crc, const uint8_t *data, size_t len);
uint16_t ecgp_crc16(const uint8_t *data, size_t len);

/* COBS without the delimiter. Decoding may run in place (out == in). */
int32_t ecgp_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t cap);
int32_t ecgp_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* Frame encoders: write COBS(frame) + 0x00 into out; return the number of wire bytes or an ecgp_status.
 * They check their arguments like a receiver would (ECGP_ERR_ARG), so they never send a bad frame. */
int32_t ecgp_encode_hello(const ecgp_hello_t *h, uint16_t seq, uint8_t *out, size_t cap);
int32_t ecgp_encode_samples(const ecgp_samples_t *s, uint16_t seq, uint8_t *out, size_t cap);
int32_t ecgp_encode_event(const ecgp_event_t *e, uint16_t seq, uint8_t *out, size_t cap);
int32_t ecgp_encode_start(const ecgp_start_t *s, uint16_t seq, uint8_t *out, size_t cap);
int32_t ecgp_encode_stop(uint16_t seq, uint8_t *out, size_t cap);
int32_t ecgp_encode_hello_request(uint16_t seq, uint8_t *out, size_t cap);

/* Check and parse a decoded frame (header | payload | crc). Pointers in *out point into frame. */
int32_t ecgp_parse_frame(const uint8_t *frame, size_t len, ecgp_frame_t *out);
/* COBS-decode a wire segment (without delimiter) in place, then ecgp_parse_frame. */
int32_t ecgp_decode_frame(uint8_t *segment, size_t len, ecgp_frame_t *out);
/* Sample s of channel c of a decoded SAMPLES frame. */
int16_t ecgp_sample(const ecgp_samples_t *s, unsigned sample, unsigned channel);

/* True if the bytes are valid UTF-8 (as strict as Python's decoder: no overlongs, no surrogates). */
int ecgp_utf8_valid(const uint8_t *s, size_t len);

typedef struct {
    uint32_t frames_ok;
    uint32_t cobs_errors;
    uint32_t length_errors;
    uint32_t crc_errors;
    uint32_t format_errors;
    uint32_t seq_gaps;
    uint32_t frames_lost;
    uint32_t seq_resets;
    uint32_t bytes_discarded;
    uint32_t overflow;
} ecgp_rx_stats_t;

/* Incremental receiver: feed it one byte at a time. */
typedef struct {
    uint8_t *buf;      /* caller's buffer for one COBS segment */
    size_t cap;
    size_t len;
    uint8_t discarding; /* inside an overflowing segment */
    uint8_t first;      /* no delimiter seen yet */
    uint8_t have_seq;
    uint16_t next_seq;
    ecgp_rx_stats_t stats;
} ecgp_rx_t;

void ecgp_rx_init(ecgp_rx_t *rx, uint8_t *buf, size_t cap);
/* Returns 1 when a valid frame is complete (*out valid until the next call: it points into buf),
 * 0 when more bytes are needed, or a negative ecgp_status when a frame was dropped (already counted). */
int ecgp_rx_feed(ecgp_rx_t *rx, uint8_t byte, ecgp_frame_t *out);

#ifdef __cplusplus
}
#endif

#endif /* ECGPROTO_H */
