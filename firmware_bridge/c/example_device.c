/*
 * example_device: an example ECG acquisition device main loop on top of ecgproto.c (PROTOCOL.md).
 *
 * The loop is what a firmware's main() does, with POSIX stand-ins for the hardware so that it runs on a
 * PC against the real host (`ecg-edge run`) over a pseudo-terminal or a serial device:
 *
 *     uart_write()        -> write() to a file descriptor (non-blocking: a full buffer drops the frame,
 *                            its seq is still used up, so the host sees the loss)
 *     uart_rx interrupt   -> poll() + read(), bytes fed one by one to ecgp_rx_feed()
 *     ADC timer           -> CLOCK_MONOTONIC: one SAMPLES frame every SAMPLES_PER_FRAME samples
 *     ADC                 -> a synthetic 8-channel ECG (I, II, V1..V6), 1 uV per count, clamped to int16
 *
 * Behaviour (PROTOCOL.md section 8): at power-on send 00 then HELLO (seq 0) and stream at once (or, with
 * --wait-start, only after START). START without rate: send HELLO, resume. START with a rate of 250, 500
 * or 1000 Hz: switch, restart the sample index at 0, send HELLO, stream; any other rate: EVENT 4 (device
 * error) and nothing changes. STOP: pause (the index pauses too). HELLO_REQUEST: HELLO, index unchanged.
 *
 * Usage:  example_device --pty [options]     create a pseudo-terminal and print its path on stdout
 *         example_device PATH [options]      open a serial device (raw mode; the baud rate is the port's)
 * Options: --fs HZ (500)  --seconds S (run time, default forever)  --speed X (signal time per wall time,
 *          default 1; a pty ignores baud, so a test may run faster than real time)  --wait-start
 *
 * Build: make -C firmware_bridge/c example   (C99 + POSIX; ecgproto.c itself needs only <string.h>).
 */
#define _XOPEN_SOURCE 600
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ecgproto.h"

#define N_CHANNELS 8u
#define SAMPLES_PER_FRAME 10u
#define LSB_NV 1000u /* 1 uV per count */
#define DEVICE_ID "example-device-c"

static const uint8_t CHANNEL_LEADS[N_CHANNELS] = {0, 1, 6, 7, 8, 9, 10, 11}; /* I, II, V1..V6 */
/* Relative amplitude of P, QRS and T per channel (a plausible sinus rhythm, mV at peak). */
static const double P_MV[N_CHANNELS] = {0.08, 0.12, 0.05, 0.06, 0.07, 0.08, 0.08, 0.07};
static const double R_MV[N_CHANNELS] = {0.8, 1.2, -0.7, -0.9, 0.4, 1.2, 1.5, 1.1};
static const double T_MV[N_CHANNELS] = {0.2, 0.3, -0.1, 0.3, 0.4, 0.4, 0.3, 0.25};

typedef struct {
    int fd;
    uint16_t tx_seq;    /* device -> host frame counter, +1 per frame sent or dropped */
    uint16_t fs_hz;
    uint32_t index;     /* first_sample of the next SAMPLES frame */
    int streaming;
    uint32_t dropped;   /* frames the port could not take */
} device_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The UART: one frame's wire bytes, or nothing (the frame is dropped, its seq already used). */
static void port_send(device_t *d, const uint8_t *wire, int32_t n) {
    d->tx_seq = (uint16_t)(d->tx_seq + 1u);
    if (n <= 0) return;
    ssize_t done = 0;
    while (done < n) {
        ssize_t w = write(d->fd, wire + done, (size_t)(n - done));
        if (w > 0) {
            done += w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (done == 0) { /* EAGAIN (buffer full) or no reader: drop the whole frame */
            d->dropped++;
            return;
        } else { /* half a frame is out: finish it, or the host would lose the next one too */
            struct pollfd p = {d->fd, POLLOUT, 0};
            (void)poll(&p, 1, 50);
        }
    }
}

static void send_hello(device_t *d) {
    uint8_t wire[ECGP_WIRE_MAX(ECGP_HELLO_PAYLOAD(N_CHANNELS, sizeof DEVICE_ID))];
    ecgp_hello_t h = {d->fs_hz, N_CHANNELS, LSB_NV, CHANNEL_LEADS, 1, 0, DEVICE_ID, sizeof DEVICE_ID - 1};
    port_send(d, wire, ecgp_encode_hello(&h, d->tx_seq, wire, sizeof wire));
}

static void send_event(device_t *d, uint8_t code, const char *text) {
    uint8_t wire[ECGP_WIRE_MAX(ECGP_EVENT_PAYLOAD(64))];
    size_t len = strlen(text) < 64 ? strlen(text) : 64;
    ecgp_event_t e = {code, d->index, (const uint8_t *)text, len};
    port_send(d, wire, ecgp_encode_event(&e, d->tx_seq, wire, sizeof wire));
}

/* The ADC: sample i of every channel in counts (1 uV), a 72 bpm beat; saturates at the int16 rails. */
static void acquire(const device_t *d, uint32_t i, int16_t *out) {
    double t = (double)i / (double)d->fs_hz;
    double phase = fmod(t, 60.0 / 72.0);
    double p = exp(-pow((phase - 0.10) / 0.025, 2.0));
    double r = exp(-pow((phase - 0.25) / 0.010, 2.0));
    double tw = exp(-pow((phase - 0.50) / 0.050, 2.0));
    for (unsigned c = 0; c < N_CHANNELS; c++) {
        double mv = P_MV[c] * p + R_MV[c] * r + T_MV[c] * tw + 0.02 * sin(2.0 * 3.14159265 * 0.3 * t);
        double counts = mv * 1e6 / (double)LSB_NV;
        if (counts > 32767.0) counts = 32767.0; /* the rail value is what a clipping ADC sends */
        if (counts < -32767.0) counts = -32767.0;
        out[c] = (int16_t)lround(counts);
    }
}

static void send_samples(device_t *d) {
    int16_t block[SAMPLES_PER_FRAME * N_CHANNELS];
    uint8_t wire[ECGP_WIRE_MAX(ECGP_SAMPLES_PAYLOAD(SAMPLES_PER_FRAME, N_CHANNELS))];
    for (unsigned s = 0; s < SAMPLES_PER_FRAME; s++) acquire(d, d->index + s, &block[s * N_CHANNELS]);
    ecgp_samples_t f = {d->index, N_CHANNELS, SAMPLES_PER_FRAME, 0, block, NULL};
    port_send(d, wire, ecgp_encode_samples(&f, d->tx_seq, wire, sizeof wire));
    d->index += SAMPLES_PER_FRAME; /* the index advances whether or not the port took the frame */
}

static void handle_command(device_t *d, const ecgp_frame_t *f) {
    switch (f->type) {
    case ECGP_START:
        if (f->u.start.has_fs && f->u.start.fs_hz != d->fs_hz) {
            uint16_t fs = f->u.start.fs_hz;
            if (fs != 250 && fs != 500 && fs != 1000) {
                char msg[48];
                snprintf(msg, sizeof msg, "fs %u Hz not supported", (unsigned)fs);
                send_event(d, ECGP_EVENT_DEVICE_ERROR, msg);
                break;
            }
            d->fs_hz = fs;
            d->index = 0; /* a new format restarts the sample index */
        }
        send_hello(d);
        d->streaming = 1;
        break;
    case ECGP_STOP:
        d->streaming = 0;
        break;
    case ECGP_HELLO_REQUEST:
        send_hello(d);
        break;
    default: /* device -> host types arriving here are ignored (PROTOCOL.md section 7) */
        break;
    }
}

/* Raw mode by hand (cfmakeraw is not POSIX): bytes in and out unchanged, no echo, no signals. */
static void set_raw(int fd) {
    struct termios tio;
    if (tcgetattr(fd, &tio) != 0) return; /* not a terminal: nothing to set */
    tio.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    tio.c_oflag &= ~(tcflag_t)OPOST;
    tio.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    tio.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
    tio.c_cflag |= CS8 | CLOCAL | CREAD;
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    (void)tcsetattr(fd, TCSANOW, &tio);
}

static int open_port(const char *path, int make_pty, int *keep_slave) {
    int fd;
    *keep_slave = -1;
    if (make_pty) {
        fd = posix_openpt(O_RDWR | O_NOCTTY);
        if (fd < 0 || grantpt(fd) != 0 || unlockpt(fd) != 0) return -1;
        const char *name = ptsname(fd);
        if (name == NULL) return -1;
        /* Keep the slave open ourselves: raw (no echo of our frames back to us), and no EIO on read
         * before the host opens it. */
        *keep_slave = open(name, O_RDWR | O_NOCTTY);
        if (*keep_slave < 0) return -1;
        set_raw(*keep_slave);
        printf("%s\n", name);
        fflush(stdout);
    } else {
        fd = open(path, O_RDWR | O_NOCTTY);
        if (fd < 0) return -1;
        set_raw(fd);
    }
    int flags = fcntl(fd, F_GETFL);
    (void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    return fd;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int make_pty = 0, wait_start = 0;
    double seconds = -1.0, speed = 1.0;
    long fs = 500;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pty") == 0) make_pty = 1;
        else if (strcmp(argv[i], "--wait-start") == 0) wait_start = 1;
        else if (strcmp(argv[i], "--fs") == 0 && i + 1 < argc) fs = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = strtod(argv[++i], NULL);
        else if (strcmp(argv[i], "--speed") == 0 && i + 1 < argc) speed = strtod(argv[++i], NULL);
        else if (argv[i][0] != '-' && path == NULL) path = argv[i];
        else {
            fprintf(stderr, "usage: %s --pty | PATH [--fs HZ] [--seconds S] [--speed X] [--wait-start]\n",
                    argv[0]);
            return 2;
        }
    }
    if ((path == NULL) == (make_pty == 0) || fs < 1 || fs > 65535 || speed <= 0.0) {
        fprintf(stderr, "example_device: give --pty or a device PATH; --fs 1..65535; --speed > 0\n");
        return 2;
    }
    int slave = -1;
    device_t d = {-1, 0, (uint16_t)fs, 0, !wait_start, 0};
    d.fd = open_port(path, make_pty, &slave);
    if (d.fd < 0) {
        fprintf(stderr, "example_device: cannot open %s: %s\n", make_pty ? "a pty" : path, strerror(errno));
        return 1;
    }

    static uint8_t rx_buf[ECGP_COMMAND_RX_BUFFER];
    ecgp_rx_t rx;
    ecgp_rx_init(&rx, rx_buf, sizeof rx_buf);
    const uint8_t zero = 0;
    if (write(d.fd, &zero, 1) < 0 && errno != EAGAIN) { /* resynchronise a half-read frame on the host */
        fprintf(stderr, "example_device: write failed: %s\n", strerror(errno));
    }
    send_hello(&d); /* power-on: seq 0 */

    double start = now_s();
    double next = start; /* wall time at which the next frame is due */
    for (;;) {
        double t = now_s();
        if (seconds >= 0.0 && t - start >= seconds) break;
        /* Wait for host bytes until the next frame is due (the UART RX interrupt, in firmware). */
        double wait = next - t;
        struct pollfd p = {d.fd, POLLIN, 0};
        int ready = poll(&p, 1, wait > 0 ? (int)(wait * 1000.0) + 1 : 0);
        if (ready > 0 && (p.revents & POLLIN)) {
            uint8_t in[64];
            ssize_t n = read(d.fd, in, sizeof in);
            for (ssize_t k = 0; k < n; k++) {
                ecgp_frame_t f;
                if (ecgp_rx_feed(&rx, in[k], &f) == 1) handle_command(&d, &f);
            }
        }
        t = now_s();
        if (t < next) continue;
        if (d.streaming) send_samples(&d);
        next += (double)SAMPLES_PER_FRAME / (double)d.fs_hz / speed;
        if (t - next > 1.0) next = t; /* suspended for a while: do not burst to catch up */
    }
    fprintf(stderr, "example_device: %u samples sent, %u frames dropped, %u bad host frames\n",
            (unsigned)d.index, (unsigned)d.dropped,
            (unsigned)(rx.stats.cobs_errors + rx.stats.length_errors + rx.stats.crc_errors +
                       rx.stats.format_errors));
    if (slave >= 0) close(slave);
    close(d.fd);
    return 0;
}
