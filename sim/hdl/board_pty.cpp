// DPI functions of board_tb.sv: the byte stream of a pseudo-terminal (the
// serial-port stand-in opened by sim/board_sim.py), moved in bursts. The
// master side's file descriptor is inherited; its number is in BOARD_PTY_FD.
#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

static int fd = -1;
static unsigned char in_buf[4096];
static ssize_t in_len = 0, in_pos = 0;
static unsigned char out_buf[4096];
static size_t out_len = 0;

static int flush_queue() {
    size_t done = 0;
    while (done < out_len) {
        ssize_t n = write(fd, out_buf + done, out_len - done);
        if (n > 0) {
            done += static_cast<size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            usleep(100);
        } else {
            out_len = 0;
            return -2;
        }
    }
    out_len = 0;
    return 0;
}

// Returns the descriptor, or -1 when BOARD_PTY_FD is not set.
extern "C" int board_pty_open() {
    const char* text = std::getenv("BOARD_PTY_FD");
    if (text == nullptr) return -1;
    fd = std::atoi(text);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

// The next byte from the host (0..255), -1 when none is waiting, -2 when the
// host side is gone. Reads whatever the host has written in one call.
extern "C" int board_pty_getc() {
    if (in_pos < in_len) return in_buf[in_pos++];
    ssize_t n = read(fd, in_buf, sizeof in_buf);
    if (n > 0) {
        in_len = n;
        in_pos = 1;
        return in_buf[0];
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return -1;
    return -2;
}

// Queue a byte for the host; board_pty_flush sends the queue.
extern "C" void board_pty_putc(int byte) {
    out_buf[out_len++] = static_cast<unsigned char>(byte);
    if (out_len == sizeof out_buf) flush_queue();
}

// Send the queued bytes; -2 when the host side is gone.
extern "C" int board_pty_flush() { return flush_queue(); }
