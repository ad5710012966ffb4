/* Eight modular multiplications at once with AVX-512 IFMA (included by _native.c).
 *
 * Numbers are kept in radix 2^52, one 64-bit lane per independent operand ("vertical" SIMD):
 * vector k of an operand holds limb k of eight numbers. The Montgomery product is
 * product-scanning (FIPS), so column accumulators stay in registers; carries are left lazy
 * inside a column (52-bit partial products in 64-bit lanes leave 12 bits of headroom, enough
 * for 4 * 160 terms) and propagated once per column. With R = 2^(52 s) > 4 M, operands and
 * results stay below 2 M and no conditional subtraction is needed until the final export.
 *
 * Everything here is selected at run time (CPUID) and is checked against GMP by the tests.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#define MP_HAVE_IFMA 1
#include <cpuid.h>
#include <immintrin.h>

#define IFMA_MAXS 160 /* limbs: moduli up to 8318 bits (n^2 for 4096-bit keys) */
#define IFMA_M52 ((1ULL << 52) - 1)
#define IFMA_FN __attribute__((target("avx512f,avx512ifma")))

static int ifma_enabled = -1; /* -1: not probed; 0: off; 1: on */

static int
ifma_probe(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    int has_f = (b >> 16) & 1, has_ifma = (b >> 21) & 1;
    if (!has_f || !has_ifma)
        return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) /* OSXSAVE */
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xE6) == 0xE6; /* the OS saves SSE, AVX and all AVX-512 state */
}

static int
ifma_on(void)
{
    if (ifma_enabled < 0)
        ifma_enabled = ifma_probe();
    return ifma_enabled;
}

typedef struct {
    int s;
    __m512i m[IFMA_MAXS];
    __m512i mp;
    __m512i r2[IFMA_MAXS];  /* R^2 mod M, broadcast */
    __m512i rm[IFMA_MAXS];  /* R mod M: Montgomery one, and the identity of mont(., rm) */
    __m512i one[IFMA_MAXS]; /* plain 1 */
    mpz_t M, R2, Rm;
} ifma_ctx;

static void *
ifma_alloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return NULL;
    return p;
}

static void
ifma_to52(const mpz_t x, uint64_t *out, int s)
{
    const mp_limb_t *w = mpz_limbs_read(x);
    size_t n = mpz_size(x);
    for (int k = 0; k < s; k++) {
        size_t off = (size_t)52 * k, idx = off >> 6;
        unsigned sh = off & 63;
        uint64_t v = idx < n ? w[idx] >> sh : 0;
        if (sh > 12 && idx + 1 < n)
            v |= w[idx + 1] << (64 - sh);
        out[k] = v & IFMA_M52;
    }
}

static void
ifma_from52(const uint64_t *l, int s, mpz_t x)
{
    size_t nw = ((size_t)52 * s + 63) / 64 + 1;
    mp_limb_t *w = mpz_limbs_write(x, nw);
    memset(w, 0, nw * sizeof(mp_limb_t));
    for (int k = 0; k < s; k++) {
        size_t off = (size_t)52 * k, idx = off >> 6;
        unsigned sh = off & 63;
        w[idx] |= l[k] << sh;
        if (sh > 12)
            w[idx + 1] |= l[k] >> (64 - sh);
    }
    mpz_limbs_finish(x, nw);
}

/* lane-transposed staging buffer: limb k of lane L at buf[k * 8 + L] */
IFMA_FN static void
ifma_load(__m512i *v, const uint64_t *buf, int s)
{
    for (int k = 0; k < s; k++)
        v[k] = _mm512_load_si512((const void *)(buf + 8 * k));
}

IFMA_FN static void
ifma_store(uint64_t *buf, const __m512i *v, int s)
{
    for (int k = 0; k < s; k++)
        _mm512_store_si512((void *)(buf + 8 * k), v[k]);
}

static void
ifma_stage(uint64_t *buf, int lane, const mpz_t x, int s)
{
    uint64_t tmp[IFMA_MAXS];
    ifma_to52(x, tmp, s);
    for (int k = 0; k < s; k++)
        buf[8 * k + lane] = tmp[k];
}

static void
ifma_unstage(const uint64_t *buf, int lane, mpz_t x, const ifma_ctx *c)
{
    uint64_t tmp[IFMA_MAXS];
    for (int k = 0; k < c->s; k++)
        tmp[k] = buf[8 * k + lane];
    ifma_from52(tmp, c->s, x);
    mpz_mod(x, x, c->M);
}

IFMA_FN static void
ifma_broadcast(__m512i *v, const mpz_t x, int s)
{
    uint64_t tmp[IFMA_MAXS];
    ifma_to52(x, tmp, s);
    for (int k = 0; k < s; k++)
        v[k] = _mm512_set1_epi64((long long)tmp[k]);
}

/* Returns 0 when the modulus does not suit (even, or too wide). */
IFMA_FN static int
ifma_setup(ifma_ctx *c, const mpz_t M)
{
    size_t bits = mpz_sizeinbase(M, 2);
    if (mpz_even_p(M) || mpz_cmp_ui(M, 3) < 0 || GMP_NUMB_BITS != 64)
        return 0;
    int s = (int)((bits + 2 + 51) / 52);
    if (s > IFMA_MAXS)
        return 0;
    c->s = s;
    mpz_init_set(c->M, M);
    mpz_init(c->R2);
    mpz_init(c->Rm);
    uint64_t tmp[IFMA_MAXS];
    ifma_to52(M, tmp, s);
    for (int k = 0; k < s; k++)
        c->m[k] = _mm512_set1_epi64((long long)tmp[k]);
    uint64_t inv = 1;
    for (int i = 0; i < 7; i++)
        inv *= 2 - tmp[0] * inv; /* Newton: inv = m0^-1 mod 2^64 */
    c->mp = _mm512_set1_epi64((long long)((0 - inv) & IFMA_M52));
    mpz_set_ui(c->Rm, 1);
    mpz_mul_2exp(c->Rm, c->Rm, (mp_bitcnt_t)52 * s);
    mpz_mod(c->Rm, c->Rm, M);
    mpz_mul(c->R2, c->Rm, c->Rm);
    mpz_mod(c->R2, c->R2, M);
    ifma_broadcast(c->r2, c->R2, s);
    ifma_broadcast(c->rm, c->Rm, s);
    for (int k = 0; k < s; k++)
        c->one[k] = _mm512_setzero_si512();
    c->one[0] = _mm512_set1_epi64(1);
    return 1;
}

static void
ifma_release(ifma_ctx *c)
{
    mpz_clear(c->M);
    mpz_clear(c->R2);
    mpz_clear(c->Rm);
}

/* The half of a column both products share: add the q_i * m_{k-i} terms, then either fix
 * q_k (k < s: it zeroes the column's low 52 bits) or emit result limb k - s; carry onwards. */
IFMA_FN static inline __attribute__((always_inline)) __m512i
ifma_finish_column(int k, int lo, __m512i x0, __m512i x1, __m512i *q, __m512i *r,
                   const ifma_ctx *c)
{
    const int s = c->s;
    const __m512i zero = _mm512_setzero_si512();
    __m512i y0 = zero, y1 = zero;
    int qhi = k - 1 < s - 1 ? k - 1 : s - 1;
    for (int i = lo; i <= qhi; i++) {
        y0 = _mm512_madd52lo_epu64(y0, q[i], c->m[k - i]);
        y1 = _mm512_madd52hi_epu64(y1, q[i], c->m[k - i]);
    }
    x0 = _mm512_add_epi64(x0, y0);
    x1 = _mm512_add_epi64(x1, y1);
    if (k < s) {
        __m512i qk = _mm512_madd52lo_epu64(zero, x0, c->mp);
        q[k] = qk;
        x0 = _mm512_madd52lo_epu64(x0, qk, c->m[0]);
        x1 = _mm512_madd52hi_epu64(x1, qk, c->m[0]);
    } else {
        r[k - s] = _mm512_and_si512(x0, _mm512_set1_epi64(IFMA_M52));
    }
    return _mm512_add_epi64(x1, _mm512_srli_epi64(x0, 52));
}

/* r = a * b * R^-1 (mod M); a, b < 2M in, r < 2M out; r may alias a or b */
IFMA_FN static void
ifma_mul(__m512i *r, const __m512i *a, const __m512i *b, const ifma_ctx *c)
{
    const int s = c->s;
    const __m512i zero = _mm512_setzero_si512();
    __m512i q[IFMA_MAXS];
    __m512i acc = zero;
    for (int k = 0; k < 2 * s; k++) {
        int lo = k - s + 1 > 0 ? k - s + 1 : 0;
        int hi = k < s - 1 ? k : s - 1;
        __m512i x0 = acc, x1 = zero;
        for (int i = lo; i <= hi; i++) {
            x0 = _mm512_madd52lo_epu64(x0, a[i], b[k - i]);
            x1 = _mm512_madd52hi_epu64(x1, a[i], b[k - i]);
        }
        acc = ifma_finish_column(k, lo, x0, x1, q, r, c);
    }
}

/* r = a^2 * R^-1 (mod M): the symmetric products once, doubled */
IFMA_FN static void
ifma_sqr(__m512i *r, const __m512i *a, const ifma_ctx *c)
{
    const int s = c->s;
    const __m512i zero = _mm512_setzero_si512();
    __m512i q[IFMA_MAXS];
    __m512i acc = zero;
    for (int k = 0; k < 2 * s; k++) {
        int lo = k - s + 1 > 0 ? k - s + 1 : 0;
        __m512i d0 = zero, d1 = zero;
        for (int i = lo; 2 * i < k; i++) {
            d0 = _mm512_madd52lo_epu64(d0, a[i], a[k - i]);
            d1 = _mm512_madd52hi_epu64(d1, a[i], a[k - i]);
        }
        d0 = _mm512_slli_epi64(d0, 1);
        d1 = _mm512_slli_epi64(d1, 1);
        if ((k & 1) == 0 && k / 2 < s) {
            d0 = _mm512_madd52lo_epu64(d0, a[k / 2], a[k / 2]);
            d1 = _mm512_madd52hi_epu64(d1, a[k / 2], a[k / 2]);
        }
        acc = ifma_finish_column(k, lo, _mm512_add_epi64(d0, acc), d1, q, r, c);
    }
}

/* Constant-time table read: every entry is touched, the wanted one kept by mask. */
IFMA_FN static void
ifma_select(__m512i *out, const __m512i *table, int entries, int want, int s)
{
    for (int k = 0; k < s; k++)
        out[k] = _mm512_setzero_si512();
    for (int d = 0; d < entries; d++) {
        __mmask8 m = (__mmask8)(0 - (unsigned)(d == want));
        const __m512i *t = table + (size_t)d * s;
        for (int k = 0; k < s; k++)
            out[k] = _mm512_mask_mov_epi64(out[k], m, t[k]);
    }
}

/* bases[i] = bases[i] ^ e_i mod M, 8 lanes a pass, fixed 5-bit windows. With ``exps`` NULL
 * every lane uses ``shared`` (> 0): the window digit is common, so the table entry is read
 * directly, or with ``ct`` by a masked scan of every entry with a multiplication in every
 * window (constant time). Otherwise each lane has its own exponent (>= 0) and gathers its entry
 * from the lane-interleaved table (entry d, limb k, lane L at qword (d * s + k) * 8 + L).
 * Returns 0 on allocation failure (nothing changed). */
IFMA_FN static int
ifma_powmod(mpz_t *bases, mpz_t *exps, const mpz_t shared, Py_ssize_t n, const ifma_ctx *c,
            int ct)
{
    const int s = c->s, w = 5, entries = 1 << 5;
    __m512i *T = ifma_alloc(sizeof(__m512i) * (size_t)entries * s);
    __m512i *x = ifma_alloc(sizeof(__m512i) * (size_t)s * 2);
    uint64_t *buf = ifma_alloc(sizeof(uint64_t) * 8 * (size_t)s);
    if (T == NULL || x == NULL || buf == NULL) {
        free(T); free(x); free(buf);
        return 0;
    }
    __m512i *b = x + s;
    mpz_t tmp;
    mpz_init(tmp);
    for (Py_ssize_t g = 0; g < n; g += 8) {
        int lanes = n - g < 8 ? (int)(n - g) : 8;
        size_t bits = exps ? 1 : mpz_sizeinbase(shared, 2);
        memset(buf, 0, sizeof(uint64_t) * 8 * (size_t)s);
        for (int L = 0; L < lanes; L++) {
            mpz_mod(tmp, bases[g + L], c->M);
            ifma_stage(buf, L, tmp, s);
            if (exps && mpz_sizeinbase(exps[g + L], 2) > bits)
                bits = mpz_sizeinbase(exps[g + L], 2);
        }
        ifma_load(b, buf, s);
        /* T[d] = base^d in Montgomery form */
        memcpy(T, c->rm, sizeof(__m512i) * s);
        ifma_mul(T + s, b, c->r2, c);
        for (int d = 2; d < entries; d++)
            ifma_mul(T + (size_t)d * s, T + (size_t)(d - 1) * s, T + s, c);
        memcpy(x, c->rm, sizeof(__m512i) * s);
        size_t nwin = (bits + w - 1) / w;
        for (size_t win = nwin; win-- > 0;) {
            long long idx[8];
            int digit = 0;
            for (int L = 0; L < 8; L++) {
                int d = 0;
                if (L < lanes || !exps)
                    for (int t = w - 1; t >= 0; t--)
                        d = (d << 1) | mpz_tstbit(exps ? exps[g + (L < lanes ? L : 0)] : shared,
                                                  (mp_bitcnt_t)(win * w + t));
                idx[L] = (long long)d * s * 8 + L;
                digit = d;
            }
            if (win != nwin - 1)
                for (int t = 0; t < w; t++)
                    ifma_sqr(x, x, c);
            if (exps) {
                __m512i vi = _mm512_loadu_si512((const void *)idx);
                for (int k = 0; k < s; k++)
                    b[k] = _mm512_i64gather_epi64(
                        _mm512_add_epi64(vi, _mm512_set1_epi64((long long)k * 8)),
                        (const void *)T, 8);
                ifma_mul(x, x, b, c);
            } else if (ct) {
                ifma_select(b, T, entries, digit, s);
                ifma_mul(x, x, b, c);
            } else if (digit) {
                ifma_mul(x, x, T + (size_t)digit * s, c);
            }
        }
        ifma_mul(x, x, c->one, c);
        ifma_store(buf, x, s);
        for (int L = 0; L < lanes; L++)
            ifma_unstage(buf, L, bases[g + L], c);
    }
    mpz_clear(tmp);
    free(T); free(x); free(buf);
    return 1;
}

/* Fixed-base powers, 8 exponents a pass. The table holds plain residues
 * table[j * per + d - 1] = base^(d * 2^(w j)) (shared with the GMP path), so each pass staged
 * the lane's entry and multiplies: mont(acc, T) = acc * T * R^-1. A zero digit multiplies by
 * R mod M, the identity of mont(). After k non-zero digits acc = prod(T) * R^-k, and one last
 * product with R^(k+1) (rpow[k + 1]) removes the R^-k. */
IFMA_FN static int
ifma_fixed_base(mpz_t *exps, Py_ssize_t n, mpz_t *table, Py_ssize_t digits, int window,
                mpz_t *rpow, const ifma_ctx *c)
{
    const int s = c->s;
    const Py_ssize_t per = ((Py_ssize_t)1 << window) - 1;
    __m512i *x = ifma_alloc(sizeof(__m512i) * (size_t)s * 2);
    uint64_t *buf = ifma_alloc(sizeof(uint64_t) * 8 * (size_t)s);
    if (x == NULL || buf == NULL) {
        free(x); free(buf);
        return 0;
    }
    __m512i *b = x + s;
    for (Py_ssize_t g = 0; g < n; g += 8) {
        int lanes = n - g < 8 ? (int)(n - g) : 8;
        int count[8] = {0};
        memcpy(x, c->one, sizeof(__m512i) * s);
        for (Py_ssize_t j = 0; j < digits; j++) {
            for (int L = 0; L < 8; L++) {
                unsigned long d = 0;
                if (L < lanes)
                    for (int t = window - 1; t >= 0; t--)
                        d = (d << 1) | (unsigned long)mpz_tstbit(
                            exps[g + L], (mp_bitcnt_t)(j * window + t));
                if (d) {
                    count[L]++;
                    ifma_stage(buf, L, table[j * per + (Py_ssize_t)d - 1], s);
                } else {
                    ifma_stage(buf, L, c->Rm, s);
                }
            }
            ifma_load(b, buf, s);
            ifma_mul(x, x, b, c);
        }
        for (int L = 0; L < 8; L++)
            ifma_stage(buf, L, rpow[count[L] + 1], s);
        ifma_load(b, buf, s);
        ifma_mul(x, x, b, c);
        ifma_store(buf, x, s);
        for (int L = 0; L < lanes; L++)
            ifma_unstage(buf, L, exps[g + L], c);
    }
    free(x); free(buf);
    return 1;
}
#endif /* x86-64 GCC/Clang */
