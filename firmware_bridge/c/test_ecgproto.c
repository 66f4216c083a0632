/*
 * Unit tests of ecgproto against the golden vectors (firmware_bridge/vectors/golden.json).
 *
 *     ./test_ecgproto path/to/golden.json
 *
 * A tiny JSON reader (objects, arrays, strings, integers, true/false/null) is enough for that file; it
 * uses static memory only. Every vector is checked in both directions: fields -> wire bytes and
 * wire bytes -> fields; every must-fail segment must fail with the same error class as in Python; the
 * mixed stream is fed byte by byte through the incremental receiver.
 */
#include "ecgproto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- minimal JSON ------------------------------------------------------------------------------ */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct {
    int type;
    long long num;
    const char *str; /* decoded, NUL-terminated, in the string pool */
    size_t len;
    const char *key; /* key when a member of an object */
    int child;       /* first child (arrays, objects) or -1 */
    int next;        /* next sibling or -1 */
} jnode;

#define MAX_NODES 200000
#define MAX_TEXT (4 * 1024 * 1024)
static jnode nodes[MAX_NODES];
static int n_nodes;
static char text[MAX_TEXT];
static char pool[MAX_TEXT];
static size_t pool_len;
static const char *jp;

static void die(const char *msg)
{
    fprintf(stderr, "test_ecgproto: %s\n", msg);
    exit(2);
}

static void skip_ws(void)
{
    while (*jp == ' ' || *jp == '\n' || *jp == '\r' || *jp == '\t') {
        jp++;
    }
}

static void pool_put(char c)
{
    if (pool_len >= MAX_TEXT) {
        die("string pool full");
    }
    pool[pool_len++] = c;
}

static const char *parse_string(size_t *len)
{
    size_t start = pool_len;
    if (*jp++ != '"') {
        die("expected string");
    }
    while (*jp != '"') {
        if (*jp == '\0') {
            die("unterminated string");
        }
        if (*jp == '\\') {
            jp++;
            switch (*jp) {
            case 'n': pool_put('\n'); break;
            case 't': pool_put('\t'); break;
            case 'r': pool_put('\r'); break;
            case 'b': pool_put('\b'); break;
            case 'f': pool_put('\f'); break;
            case 'u': { /* BMP only: enough for this file */
                unsigned cp = (unsigned)strtoul((char[]){jp[1], jp[2], jp[3], jp[4], 0}, NULL, 16);
                if (cp < 0x80u) {
                    pool_put((char)cp);
                } else if (cp < 0x800u) {
                    pool_put((char)(0xC0u | (cp >> 6)));
                    pool_put((char)(0x80u | (cp & 0x3Fu)));
                } else {
                    pool_put((char)(0xE0u | (cp >> 12)));
                    pool_put((char)(0x80u | ((cp >> 6) & 0x3Fu)));
                    pool_put((char)(0x80u | (cp & 0x3Fu)));
                }
                jp += 4;
                break;
            }
            default: pool_put(*jp); break; /* \" \\ \/ */
            }
            jp++;
        } else {
            pool_put(*jp++);
        }
    }
    jp++;
    *len = pool_len - start;
    pool_put('\0');
    return pool + start;
}

static int parse_value(void)
{
    int idx, prev = -1, child;
    jnode *n;
    skip_ws();
    if (n_nodes >= MAX_NODES) {
        die("too many JSON nodes");
    }
    idx = n_nodes++;
    n = &nodes[idx];
    n->child = n->next = -1;
    n->key = NULL;
    if (*jp == '{' || *jp == '[') {
        char close = *jp == '{' ? '}' : ']';
        n->type = *jp == '{' ? J_OBJ : J_ARR;
        jp++;
        skip_ws();
        while (*jp != close) {
            const char *key = NULL;
            size_t klen;
            if (nodes[idx].type == J_OBJ) {
                key = parse_string(&klen);
                skip_ws();
                if (*jp++ != ':') {
                    die("expected ':'");
                }
            }
            child = parse_value();
            nodes[child].key = key;
            if (prev < 0) {
                nodes[idx].child = child;
            } else {
                nodes[prev].next = child;
            }
            prev = child;
            skip_ws();
            if (*jp == ',') {
                jp++;
                skip_ws();
            } else if (*jp != close) {
                die("expected ',' or end of container");
            }
        }
        jp++;
    } else if (*jp == '"') {
        n->type = J_STR;
        n->str = parse_string(&n->len);
    } else if (*jp == '-' || (*jp >= '0' && *jp <= '9')) {
        char *end;
        n->type = J_NUM;
        n->num = strtoll(jp, &end, 10);
        if (*end == '.' || *end == 'e' || *end == 'E') {
            die("only integers are expected");
        }
        jp = end;
    } else if (strncmp(jp, "true", 4) == 0 || strncmp(jp, "false", 5) == 0) {
        n->type = J_BOOL;
        n->num = *jp == 't';
        jp += *jp == 't' ? 4 : 5;
    } else if (strncmp(jp, "null", 4) == 0) {
        n->type = J_NULL;
        jp += 4;
    } else {
        die("unexpected JSON input");
    }
    return idx;
}

static int jget(int obj, const char *key)
{
    int c;
    for (c = nodes[obj].child; c >= 0; c = nodes[c].next) {
        if (strcmp(nodes[c].key, key) == 0) {
            return c;
        }
    }
    fprintf(stderr, "missing key %s\n", key);
    exit(2);
}

static int jlen(int arr)
{
    int c, n = 0;
    for (c = nodes[arr].child; c >= 0; c = nodes[c].next) {
        n++;
    }
    return n;
}

static long long jnum(int obj, const char *key)
{
    return nodes[jget(obj, key)].num;
}

static const char *jstr(int obj, const char *key)
{
    return nodes[jget(obj, key)].str;
}

/* ---- helpers ----------------------------------------------------------------------------------- */

static int failures, checks;

#define CHECK(cond, ...)                                                                            \
    do {                                                                                            \
        checks++;                                                                                   \
        if (!(cond)) {                                                                              \
            failures++;                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                    \
            fprintf(stderr, __VA_ARGS__);                                                           \
            fputc('\n', stderr);                                                                    \
        }                                                                                           \
    } while (0)

static uint8_t bin[65536 + 1024], enc[70000], out[70000];

static size_t unhex(const char *hex, uint8_t *dst, size_t cap)
{
    size_t n = strlen(hex) / 2, i;
    if (n > cap) {
        die("hex string too long");
    }
    for (i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            die("bad hex");
        }
        dst[i] = (uint8_t)v;
    }
    return n;
}

static int32_t error_code(const char *name)
{
    if (strcmp(name, "CobsError") == 0) return ECGP_ERR_COBS;
    if (strcmp(name, "LengthError") == 0) return ECGP_ERR_LENGTH;
    if (strcmp(name, "CrcError") == 0) return ECGP_ERR_CRC;
    if (strcmp(name, "FrameFormatError") == 0) return ECGP_ERR_FORMAT;
    die("unknown error class");
    return 0;
}

static uint8_t type_code(const char *name)
{
    static const struct { const char *name; uint8_t code; } types[] = {
        {"HELLO", ECGP_HELLO}, {"SAMPLES", ECGP_SAMPLES}, {"EVENT", ECGP_EVENT},
        {"START", ECGP_START}, {"STOP", ECGP_STOP}, {"HELLO_REQUEST", ECGP_HELLO_REQUEST}};
    size_t i;
    for (i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strcmp(types[i].name, name) == 0) {
            return types[i].code;
        }
    }
    die("unknown type name");
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------------- */

static void test_crc(int root)
{
    int crc = jget(root, "crc");
    const char *input = jstr(crc, "input_ascii");
    CHECK(ecgp_crc16((const uint8_t *)input, strlen(input)) == (uint16_t)jnum(crc, "value"), "crc check value");
    CHECK(ecgp_crc16_update(ecgp_crc16((const uint8_t *)input, 4), (const uint8_t *)input + 4, 5) ==
              (uint16_t)jnum(crc, "value"), "incremental crc");
}

static void test_cobs(int root)
{
    int v;
    for (v = nodes[jget(root, "cobs")].child; v >= 0; v = nodes[v].next) {
        const char *name = jstr(v, "name");
        size_t dlen = unhex(jstr(v, "decoded_hex"), bin, sizeof bin);
        size_t elen = unhex(jstr(v, "encoded_hex"), enc, sizeof enc);
        int32_t n = ecgp_cobs_encode(bin, dlen, out, sizeof out);
        CHECK(n == (int32_t)elen && memcmp(out, enc, elen) == 0, "cobs encode %s", name);
        CHECK(ecgp_cobs_encode(bin, dlen, out, elen - 1u) == ECGP_ERR_BUFFER, "cobs encode short buffer %s", name);
        n = ecgp_cobs_decode(enc, elen, out, sizeof out);
        CHECK(n == (int32_t)dlen && memcmp(out, bin, dlen) == 0, "cobs decode %s", name);
        n = ecgp_cobs_decode(enc, elen, enc, elen); /* in place */
        CHECK(n == (int32_t)dlen && memcmp(enc, bin, dlen) == 0, "cobs decode in place %s", name);
    }
}

/* Encode a frame from its JSON fields. */
static int32_t encode_fields(int vec, uint8_t *dst, size_t cap, int16_t *samples, uint8_t *leads, uint8_t *detail)
{
    int fields = jget(vec, "fields"), c, r, i = 0;
    uint16_t seq = (uint16_t)jnum(vec, "seq");
    uint8_t type = type_code(jstr(vec, "type"));
    if (type == ECGP_HELLO) {
        ecgp_hello_t h;
        for (c = nodes[jget(fields, "channel_leads")].child; c >= 0; c = nodes[c].next) {
            leads[i++] = (uint8_t)nodes[c].num;
        }
        h.fs_hz = (uint16_t)jnum(fields, "fs_hz");
        h.n_channels = (uint8_t)jnum(fields, "n_channels");
        h.lsb_nv = (uint32_t)jnum(fields, "lsb_nv");
        h.channel_leads = leads;
        h.fw_major = (uint8_t)jnum(fields, "fw_major");
        h.fw_minor = (uint8_t)jnum(fields, "fw_minor");
        h.device_id = jstr(fields, "device_id");
        h.device_id_len = nodes[jget(fields, "device_id")].len;
        return ecgp_encode_hello(&h, seq, dst, cap);
    }
    if (type == ECGP_SAMPLES) {
        ecgp_samples_t s;
        memset(&s, 0, sizeof s);
        for (r = nodes[jget(fields, "samples")].child; r >= 0; r = nodes[r].next) {
            for (c = nodes[r].child; c >= 0; c = nodes[c].next) {
                samples[i++] = (int16_t)nodes[c].num;
            }
        }
        s.first_sample = (uint32_t)jnum(fields, "first_sample");
        s.n_channels = (uint8_t)jnum(fields, "n_channels");
        s.n_samples = (uint8_t)jnum(fields, "n_samples");
        s.lead_off = (uint16_t)jnum(fields, "lead_off");
        s.samples = samples;
        return ecgp_encode_samples(&s, seq, dst, cap);
    }
    if (type == ECGP_EVENT) {
        ecgp_event_t e;
        e.code = (uint8_t)jnum(fields, "code");
        e.sample = (uint32_t)jnum(fields, "sample");
        e.detail_len = unhex(jstr(fields, "detail_hex"), detail, 65536);
        e.detail = detail;
        return ecgp_encode_event(&e, seq, dst, cap);
    }
    if (type == ECGP_START) {
        ecgp_start_t s;
        int fs = jget(fields, "fs_hz");
        s.has_fs = (uint8_t)(nodes[fs].type == J_NUM);
        s.fs_hz = (uint16_t)nodes[fs].num;
        return ecgp_encode_start(&s, seq, dst, cap);
    }
    return type == ECGP_STOP ? ecgp_encode_stop(seq, dst, cap) : ecgp_encode_hello_request(seq, dst, cap);
}

/* Compare a decoded frame with the JSON fields. */
static void check_fields(int vec, const ecgp_frame_t *f)
{
    int fields = jget(vec, "fields"), c, r, i = 0, ok = 1;
    const char *name = jstr(vec, "name");
    CHECK(f->type == (uint8_t)jnum(vec, "type_code") && f->seq == (uint16_t)jnum(vec, "seq"), "header %s", name);
    if (f->type == ECGP_HELLO) {
        const ecgp_hello_t *h = &f->u.hello;
        CHECK(h->fs_hz == jnum(fields, "fs_hz") && h->n_channels == jnum(fields, "n_channels") &&
                  h->lsb_nv == (uint32_t)jnum(fields, "lsb_nv") && h->fw_major == jnum(fields, "fw_major") &&
                  h->fw_minor == jnum(fields, "fw_minor"), "hello fields %s", name);
        for (c = nodes[jget(fields, "channel_leads")].child; c >= 0; c = nodes[c].next) {
            ok &= h->channel_leads[i++] == nodes[c].num;
        }
        CHECK(ok, "hello leads %s", name);
        CHECK(h->device_id_len == nodes[jget(fields, "device_id")].len &&
                  memcmp(h->device_id, jstr(fields, "device_id"), h->device_id_len) == 0, "device_id %s", name);
    } else if (f->type == ECGP_SAMPLES) {
        const ecgp_samples_t *s = &f->u.samples;
        CHECK(s->first_sample == (uint32_t)jnum(fields, "first_sample") && s->n_channels == jnum(fields, "n_channels") &&
                  s->n_samples == jnum(fields, "n_samples") && s->lead_off == jnum(fields, "lead_off"),
              "samples header %s", name);
        for (r = nodes[jget(fields, "samples")].child; r >= 0; r = nodes[r].next, i++) {
            int ch = 0;
            for (c = nodes[r].child; c >= 0; c = nodes[c].next, ch++) {
                ok &= ecgp_sample(s, (unsigned)i, (unsigned)ch) == nodes[c].num;
            }
        }
        CHECK(ok && i == s->n_samples, "sample values %s", name);
    } else if (f->type == ECGP_EVENT) {
        uint8_t detail[256];
        size_t n = unhex(jstr(fields, "detail_hex"), detail, sizeof detail);
        CHECK(f->u.event.code == jnum(fields, "code") && f->u.event.sample == (uint32_t)jnum(fields, "sample") &&
                  f->u.event.detail_len == n && memcmp(f->u.event.detail, detail, n) == 0, "event %s", name);
    } else if (f->type == ECGP_START) {
        int fs = jget(fields, "fs_hz");
        CHECK(f->u.start.has_fs == (nodes[fs].type == J_NUM) &&
                  (!f->u.start.has_fs || f->u.start.fs_hz == nodes[fs].num), "start %s", name);
    }
}

static int16_t samples_buf[255 * 12];
static uint8_t leads_buf[16], detail_buf[65536], seg[70000];

static void test_frames(int root)
{
    int v;
    for (v = nodes[jget(root, "frames")].child; v >= 0; v = nodes[v].next) {
        const char *name = jstr(v, "name");
        size_t wlen = unhex(jstr(v, "encoded_hex"), enc, sizeof enc);
        size_t dlen = unhex(jstr(v, "decoded_hex"), bin, sizeof bin);
        ecgp_frame_t f;
        int32_t n = encode_fields(v, out, sizeof out, samples_buf, leads_buf, detail_buf);
        size_t cap;
        CHECK(n == (int32_t)wlen && memcmp(out, enc, wlen) == 0, "encode %s (got %ld, want %lu)", name, (long)n,
              (unsigned long)wlen);
        for (cap = 0; cap < wlen; cap += 1u + cap / 7u) { /* every too-small buffer fails cleanly */
            CHECK(encode_fields(v, out, cap, samples_buf, leads_buf, detail_buf) == ECGP_ERR_BUFFER,
                  "short buffer %lu %s", (unsigned long)cap, name);
        }
        CHECK(ecgp_parse_frame(bin, dlen, &f) == ECGP_OK, "parse decoded %s", name);
        check_fields(v, &f);
        memcpy(seg, enc, wlen - 1u);
        CHECK(ecgp_decode_frame(seg, wlen - 1u, &f) == ECGP_OK, "decode %s", name);
        check_fields(v, &f);
        if (f.type == ECGP_SAMPLES) { /* re-encode straight from the decoded little-endian samples */
            n = ecgp_encode_samples(&f.u.samples, f.seq, out, sizeof out);
            CHECK(n == (int32_t)wlen && memcmp(out, enc, wlen) == 0, "re-encode %s", name);
        }
    }
}

static void test_must_fail(int root)
{
    int v;
    for (v = nodes[jget(root, "must_fail")].child; v >= 0; v = nodes[v].next) {
        const char *name = jstr(v, "name");
        size_t n = unhex(jstr(v, "segment_hex"), seg, sizeof seg);
        ecgp_frame_t f;
        int32_t r = ecgp_decode_frame(seg, n, &f);
        CHECK(r == error_code(jstr(v, "error")), "must fail %s: got %ld", name, (long)r);
    }
}

static void test_stream(int root)
{
    int stream = jget(root, "stream"), errors, names, c;
    static uint8_t wire[200000], rxbuf[8192];
    size_t n = unhex(jstr(stream, "wire_hex"), wire, sizeof wire), i;
    ecgp_rx_t rx;
    ecgp_frame_t f;
    int got = 0, r;
    names = jget(stream, "expected_frames");
    c = nodes[names].child;
    ecgp_rx_init(&rx, rxbuf, sizeof rxbuf);
    for (i = 0; i < n; i++) {
        r = ecgp_rx_feed(&rx, wire[i], &f);
        if (r == 1) {
            int vec;
            got++;
            for (vec = nodes[jget(root, "frames")].child; vec >= 0; vec = nodes[vec].next) {
                if (c >= 0 && strcmp(jstr(vec, "name"), nodes[c].str) == 0) {
                    check_fields(vec, &f);
                }
            }
            c = c >= 0 ? nodes[c].next : -1;
        }
    }
    errors = jget(stream, "expected_errors");
    CHECK(got == jlen(names) && rx.stats.frames_ok == (uint32_t)got, "stream frames %d", got);
    CHECK(rx.stats.cobs_errors == jnum(errors, "cobs_errors") && rx.stats.length_errors == jnum(errors, "length_errors") &&
              rx.stats.crc_errors == jnum(errors, "crc_errors") && rx.stats.format_errors == jnum(errors, "format_errors"),
          "stream error counts");
}

static void test_rx_commands(void)
{
    /* A device-sized receiver: commands only, overflow on anything larger, resync afterwards. */
    uint8_t rxbuf[ECGP_COMMAND_RX_BUFFER], wire[64], big[64];
    ecgp_rx_t rx;
    ecgp_frame_t f;
    ecgp_start_t start = {1, 250};
    ecgp_event_t ev = {2, 0, NULL, 0};
    int32_t n, i, ok = 0, r;
    ecgp_rx_init(&rx, rxbuf, sizeof rxbuf);
    n = ecgp_encode_event(&ev, 0, big, sizeof big); /* a 13-byte frame: larger than the buffer */
    for (i = 0; i < n; i++) {
        r = ecgp_rx_feed(&rx, big[i], &f);
        CHECK(r == 0 || r == ECGP_ERR_OVERFLOW, "overflow path");
    }
    CHECK(rx.stats.overflow == 1 && rx.stats.frames_ok == 0, "overflow counted once");
    n = ecgp_encode_start(&start, 7, wire, sizeof wire);
    for (i = 0; i < n; i++) {
        if (ecgp_rx_feed(&rx, wire[i], &f) == 1) {
            ok = f.type == ECGP_START && f.u.start.has_fs && f.u.start.fs_hz == 250 && f.seq == 7;
        }
    }
    CHECK(ok, "START after overflow");
    n = ecgp_encode_stop(9, wire, sizeof wire);
    for (i = 0; i < n; i++) {
        ok = ecgp_rx_feed(&rx, wire[i], &f);
    }
    CHECK(ok == 1 && f.type == ECGP_STOP && rx.stats.seq_gaps == 1 && rx.stats.frames_lost == 1, "seq gap");
    /* garbage before the first delimiter is discarded silently */
    ecgp_rx_init(&rx, rxbuf, sizeof rxbuf);
    ecgp_rx_feed(&rx, 0x42, &f);
    ecgp_rx_feed(&rx, 0x00, &f);
    CHECK(rx.stats.bytes_discarded == 1 && rx.stats.cobs_errors == 0 && rx.stats.length_errors == 0,
          "leading partial frame");
    n = ecgp_encode_hello_request(65535, wire, sizeof wire);
    for (i = 0; i < n; i++) {
        ok = ecgp_rx_feed(&rx, wire[i], &f);
    }
    CHECK(ok == 1 && f.type == ECGP_HELLO_REQUEST && f.seq == 65535, "hello request");
}

static void test_bad_arguments(void)
{
    uint8_t leads[2] = {1, 1}, buf[128];
    int16_t s[2] = {0, 0};
    ecgp_hello_t h = {500, 2, 1000, leads, 0, 0, "", 0};
    ecgp_samples_t smp = {0, 2, 1, 0x0004, s, NULL};
    ecgp_start_t st = {1, 0};
    CHECK(ecgp_encode_hello(&h, 0, buf, sizeof buf) == ECGP_ERR_ARG, "duplicate leads rejected");
    leads[1] = 12;
    CHECK(ecgp_encode_hello(&h, 0, buf, sizeof buf) == ECGP_ERR_ARG, "lead 12 rejected");
    leads[1] = 2;
    h.device_id = "\xc0\xaf";
    h.device_id_len = 2;
    CHECK(ecgp_encode_hello(&h, 0, buf, sizeof buf) == ECGP_ERR_ARG, "bad utf-8 rejected");
    CHECK(ecgp_encode_samples(&smp, 0, buf, sizeof buf) == ECGP_ERR_ARG, "lead_off beyond channels rejected");
    smp.n_channels = 13;
    smp.lead_off = 0;
    CHECK(ecgp_encode_samples(&smp, 0, buf, sizeof buf) == ECGP_ERR_ARG, "13 channels rejected");
    CHECK(ecgp_encode_start(&st, 0, buf, sizeof buf) == ECGP_ERR_ARG, "START fs 0 rejected");
    CHECK(ecgp_cobs_decode((const uint8_t *)"\x01\x00", 2, buf, sizeof buf) == ECGP_ERR_COBS, "zero inside");
}

int main(int argc, char **argv)
{
    FILE *fh;
    size_t n;
    int root;
    if (argc != 2) {
        fprintf(stderr, "usage: %s golden.json\n", argv[0]);
        return 2;
    }
    fh = fopen(argv[1], "rb");
    if (fh == NULL) {
        die("cannot open the vectors file");
    }
    n = fread(text, 1, MAX_TEXT - 1, fh);
    fclose(fh);
    if (n >= MAX_TEXT - 1) {
        die("vectors file too large");
    }
    text[n] = '\0';
    jp = text;
    root = parse_value();
    test_crc(root);
    test_cobs(root);
    test_frames(root);
    test_must_fail(root);
    test_stream(root);
    test_rx_commands();
    test_bad_arguments();
    printf("ecgproto: %d checks, %d failures (%d frames, %d must-fail, %d cobs vectors)\n", checks, failures,
           jlen(jget(root, "frames")), jlen(jget(root, "must_fail")), jlen(jget(root, "cobs")));
    return failures ? 1 : 0;
}
