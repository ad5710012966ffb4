// The simulated board: the Verilator model of montpipe.sim.board.SimBoard behind a
// pseudo-terminal, so host code opens it the way it opens a board's serial port.
//
//   Vsim_board [--link PATH] [--reset-cycles N] [--byte-cycles N]
//
// Prints "PTY <slave path>" on stdout once the terminal is ready, then runs until SIGTERM or
// SIGINT (or its parent dies). Bytes the host writes go to the link, one byte a cycle at the
// stream level (UART_DIVISOR == 0; one byte every --byte-cycles, default 8: a link 50 times a
// 3 Mbaud UART's rate at 125 MHz, still slow enough that a frame never overtakes the feeding of
// the one before it, which the protocol's flow-control rule relies on) or as 8N1 bit frames on
// the rx pin; the link's bytes go back
// the same way. SIGUSR1 pulses the design's reset (a board reset: contexts and work in flight
// are lost, as on hardware). While the design is idle the loop sleeps in poll() instead of
// clocking it. On exit it prints "STATS cycles=... wall_s=..." on stderr.
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <termios.h>
#include <unistd.h>

#include "Vsim_board.h"
#include "verilated.h"

#ifndef UART_DIVISOR
#define UART_DIVISOR 0
#endif

static volatile sig_atomic_t g_stop = 0;
static volatile sig_atomic_t g_reset = 0;

static void on_stop(int) { g_stop = 1; }
static void on_reset(int) { g_reset = 1; }

struct Board {
    Vsim_board* top;
    unsigned long long cycles = 0;

    explicit Board(VerilatedContext* ctx) : top(new Vsim_board{ctx}) {}
    ~Board() { top->final(); delete top; }

    // inputs are set while the clock is low; outputs sampled here are what the rising edge sees
    void tick() {
        top->clk = 0;
        top->eval();
        top->clk = 1;
        top->eval();
        ++cycles;
    }
    void reset(int n) {
        top->rst = 1;
        for (int i = 0; i < n; ++i) tick();
        top->rst = 0;
    }
};

#if UART_DIVISOR
// the host's side of an 8N1 line, one bit every UART_DIVISOR cycles
struct HostUart {
    int tx_bit = -1, tx_timer = 0;
    unsigned tx_frame = 0;
    int rx_state = 0, rx_timer = 0, rx_bits = 0;
    unsigned rx_shift = 0;
    unsigned long long framing_errors = 0;

    // drive the device's rx pin; returns true when the current byte has been sent
    bool drive(std::deque<unsigned char>& in, Vsim_board* top) {
        bool sent = false;
        if (tx_bit < 0 && !in.empty()) {
            tx_frame = (1u << 9) | (unsigned(in.front()) << 1);
            in.pop_front();
            tx_bit = 0;
            tx_timer = UART_DIVISOR;
        }
        if (tx_bit >= 0) {
            top->rx = (tx_frame >> tx_bit) & 1;
            if (--tx_timer == 0) {
                tx_timer = UART_DIVISOR;
                if (++tx_bit == 10) { tx_bit = -1; sent = true; }
            }
        } else {
            top->rx = 1;
        }
        return sent;
    }
    // sample the device's tx pin
    void sample(Vsim_board* top, std::string& out) {
        int line = top->tx & 1;
        switch (rx_state) {
        case 0:
            if (!line) { rx_state = 1; rx_timer = UART_DIVISOR + UART_DIVISOR / 2; rx_bits = 0; rx_shift = 0; }
            break;
        case 1:
            if (--rx_timer == 0) {
                rx_shift |= unsigned(line) << rx_bits;
                rx_timer = UART_DIVISOR;
                if (++rx_bits == 8) rx_state = 2;
            }
            break;
        case 2:
            if (--rx_timer == 0) {
                if (line) out.push_back(char(rx_shift)); else ++framing_errors;
                rx_state = 3;
            }
            break;
        case 3:
            if (line) rx_state = 0;
            break;
        }
    }
    bool active() const { return tx_bit >= 0 || rx_state != 0; }
};
#endif

int main(int argc, char** argv) {
    const char* link = nullptr;
    int reset_cycles = 4;
    int byte_cycles = 8;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--link") && i + 1 < argc) link = argv[++i];
        else if (!strcmp(argv[i], "--reset-cycles") && i + 1 < argc) reset_cycles = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--byte-cycles") && i + 1 < argc) byte_cycles = atoi(argv[++i]);
        else if (!strncmp(argv[i], "+verilator", 10)) continue;
        else { fprintf(stderr, "usage: %s [--link PATH] [--reset-cycles N] [--byte-cycles N]\n", argv[0]); return 2; }
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    signal(SIGUSR1, on_reset);

    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) || unlockpt(master)) { perror("posix_openpt"); return 1; }
    const char* slave_name = ptsname(master);
    // hold the slave open ourselves, raw, so the host may open and close it at will
    int slave = open(slave_name, O_RDWR | O_NOCTTY);
    if (slave < 0) { perror("open slave"); return 1; }
    termios tio;
    tcgetattr(slave, &tio);
    cfmakeraw(&tio);
    tcsetattr(slave, TCSANOW, &tio);
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    if (link) {
        unlink(link);
        if (symlink(slave_name, link)) { perror("symlink"); return 1; }
    }

    VerilatedContext ctx;
    ctx.commandArgs(argc, argv);
    Board board(&ctx);
    board.top->clk = 0;
#if UART_DIVISOR
    board.top->rx = 1;
    HostUart uart;
#else
    board.top->rx_valid = 0;
    board.top->tx_ready = 1;
#endif
    board.reset(reset_cycles);
    printf("PTY %s\n", slave_name);
    fflush(stdout);

    std::deque<unsigned char> in;
    int gap = 0;    // cycles until the next byte may go in (stream level)
    std::string out;
    std::vector<unsigned char> buf(65536);
    auto started = std::chrono::steady_clock::now();
    while (!g_stop) {
        if (g_reset) {
            g_reset = 0;
            board.reset(reset_cycles);
        }
#if UART_DIVISOR
        bool busy = board.top->busy || !in.empty() || uart.active();
#else
        bool busy = board.top->busy || !in.empty();
#endif
        pollfd pfd{master, short(POLLIN | (out.empty() ? 0 : POLLOUT)), 0};
        int ready = poll(&pfd, 1, busy || !out.empty() ? 0 : 20);
        if (ready < 0 && errno != EINTR) { perror("poll"); break; }
        if (ready > 0 && (pfd.revents & POLLIN)) {
            ssize_t n = read(master, buf.data(), buf.size());
            for (ssize_t i = 0; i < n; ++i) in.push_back(buf[i]);
        }
        if (!out.empty()) {
            ssize_t n = write(master, out.data(), out.size());
            if (n > 0) out.erase(0, size_t(n));
        }
        if (!busy && in.empty()) continue;
        // a slice of cycles between looks at the terminal
        for (int k = 0; k < 4096 && !g_reset; ++k) {
#if UART_DIVISOR
            uart.drive(in, board.top);
            uart.sample(board.top, out);
            board.tick();
#else
            Vsim_board* t = board.top;
            if (gap) --gap;
            t->rx_valid = !in.empty() && gap == 0;
            if (!in.empty()) t->rx_data = in.front();
            t->clk = 0;
            t->eval();
            bool taken = t->rx_valid && t->rx_ready;
            if (t->tx_valid) out.push_back(char(t->tx_data));
            t->clk = 1;
            t->eval();
            ++board.cycles;
            if (taken) { in.pop_front(); gap = byte_cycles - 1; }
            if (in.empty() && !t->busy && out.size() == 0) break;
#endif
        }
    }
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    fprintf(stderr, "STATS cycles=%llu wall_s=%.3f\n", board.cycles, wall);
    if (link) unlink(link);
    close(slave);
    close(master);
    return 0;
}
