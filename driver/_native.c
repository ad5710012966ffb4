/* Batch big-integer kernels for the montpipe CPU backend.
 *
 * Every kernel converts its Python arguments while holding the GIL, then releases the GIL for
 * the arithmetic, so a thread pool runs one batch per core without pickling anything.  The
 * arithmetic is GMP's, linked from the system library: Debian's libgmp is a "fat" build that
 * selects assembly for the running CPU, measurably faster than the generic GMP bundled in the
 * gmpy2 wheel (see README, "CPU backend").
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <gmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_ifma.h"

/* batches with fewer operands than this stay on GMP: an 8-lane IFMA pass costs the same
 * however many lanes are filled, about as much as three GMP exponentiations */
#define IFMA_MIN_LANES 3

/* ---------------------------------------------------------------- conversions */

static int
mpz_set_pylong(mpz_t out, PyObject *obj, const char *what, Py_ssize_t index)
{
    PyObject *v = PyNumber_Index(obj);
    if (v == NULL) {
        PyErr_Format(PyExc_TypeError, "%s[%zd] must be an integer, not %.100s",
                     what, index, Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long small = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (!overflow) {
        if (small == -1 && PyErr_Occurred()) {
            Py_DECREF(v);
            return -1;
        }
        if (small >= 0) {
            mpz_set_ui(out, (unsigned long)small);
        } else {
            mpz_set_ui(out, (unsigned long)(-(small + 1)) + 1UL);
            mpz_neg(out, out);
        }
        Py_DECREF(v);
        return 0;
    }
    int negative = overflow < 0;
    PyObject *a = negative ? PyNumber_Absolute(v) : (Py_INCREF(v), v);
    Py_DECREF(v);
    if (a == NULL)
        return -1;
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t need = PyLong_AsNativeBytes(a, NULL, 0, Py_ASNATIVEBYTES_LITTLE_ENDIAN |
                                           Py_ASNATIVEBYTES_UNSIGNED_BUFFER);
    if (need < 0) {
        Py_DECREF(a);
        return -1;
    }
    size_t nbytes = (size_t)need + 1;
#else
    size_t nbits = _PyLong_NumBits(a);
    if (nbits == (size_t)-1 && PyErr_Occurred()) {
        Py_DECREF(a);
        return -1;
    }
    size_t nbytes = (nbits + 7) / 8 + 1;
#endif
    nbytes = (nbytes + 7) & ~(size_t)7; /* whole 64-bit words: mpz_import is faster on them */
    unsigned char *buf = PyMem_Malloc(nbytes);
    if (buf == NULL) {
        Py_DECREF(a);
        PyErr_NoMemory();
        return -1;
    }
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t got = PyLong_AsNativeBytes(a, buf, (Py_ssize_t)nbytes,
                                          Py_ASNATIVEBYTES_LITTLE_ENDIAN |
                                          Py_ASNATIVEBYTES_UNSIGNED_BUFFER);
    int rc = got < 0 ? -1 : 0;
#else
    int rc = _PyLong_AsByteArray((PyLongObject *)a, buf, nbytes, 1, 0);
#endif
    Py_DECREF(a);
    if (rc < 0) {
        PyMem_Free(buf);
        return -1;
    }
    mpz_import(out, nbytes / 8, -1, 8, -1, 0, buf);
    PyMem_Free(buf);
    if (negative)
        mpz_neg(out, out);
    return 0;
}

static PyObject *
pylong_from_mpz(const mpz_t z)
{
    if (mpz_fits_slong_p(z))
        return PyLong_FromLong(mpz_get_si(z));
    size_t nwords = (mpz_sizeinbase(z, 2) + 63) / 64;
    unsigned char *buf = PyMem_Malloc(nwords * 8);
    if (buf == NULL)
        return PyErr_NoMemory();
    size_t written = 0;
    mpz_export(buf, &written, -1, 8, -1, 0, z);
    written *= 8;
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *r = PyLong_FromUnsignedNativeBytes(buf, written, Py_ASNATIVEBYTES_LITTLE_ENDIAN);
#else
    PyObject *r = _PyLong_FromByteArray(buf, written, 1, 0);
#endif
    PyMem_Free(buf);
    if (r != NULL && mpz_sgn(z) < 0) {
        PyObject *n = PyNumber_Negative(r);
        Py_DECREF(r);
        r = n;
    }
    return r;
}

typedef struct {
    mpz_t *v;
    Py_ssize_t n;
} mpz_vec;

static void
vec_free(mpz_vec *vec)
{
    if (vec->v != NULL) {
        for (Py_ssize_t i = 0; i < vec->n; i++)
            mpz_clear(vec->v[i]);
        PyMem_Free(vec->v);
    }
    vec->v = NULL;
    vec->n = 0;
}

static int
vec_alloc(mpz_vec *vec, Py_ssize_t n)
{
    vec->v = PyMem_Malloc(sizeof(mpz_t) * (size_t)(n > 0 ? n : 1));
    vec->n = 0;
    if (vec->v == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        mpz_init(vec->v[i]);
    vec->n = n;
    return 0;
}

static int
vec_from_seq(mpz_vec *vec, PyObject *seq, const char *what)
{
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of integers");
    if (fast == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (vec_alloc(vec, n) < 0) {
        Py_DECREF(fast);
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (mpz_set_pylong(vec->v[i], items[i], what, i) < 0) {
            Py_DECREF(fast);
            vec_free(vec);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *
list_from_vec(const mpz_vec *vec)
{
    PyObject *list = PyList_New(vec->n);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < vec->n; i++) {
        PyObject *item = pylong_from_mpz(vec->v[i]);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static int
modulus_from_py(mpz_t m, PyObject *obj)
{
    if (mpz_set_pylong(m, obj, "modulus", 0) < 0)
        return -1;
    if (mpz_cmp_ui(m, 1) <= 0) {
        PyErr_SetString(PyExc_ValueError, "modulus must be an integer greater than 1");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- powmod */

PyDoc_STRVAR(powmod_doc,
"powmod(bases, exponents, modulus, secret=False) -> list[int]\n\n"
"b[i] ** e[i] mod modulus for every i; ``exponents`` may be one integer shared by all bases.\n"
"Negative exponents invert the base first. ``secret=True`` uses GMP's side-channel-silent\n"
"mpz_powm_sec (odd modulus, positive exponent).");

static PyObject *
native_powmod(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"bases", "exponents", "modulus", "secret", NULL};
    PyObject *bases_obj, *exps_obj, *mod_obj;
    int secret = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|p", kwlist,
                                     &bases_obj, &exps_obj, &mod_obj, &secret))
        return NULL;
    mpz_t m, shared;
    mpz_init(m);
    mpz_init(shared);
    mpz_vec bases = {0}, exps = {0};
    PyObject *result = NULL;
    int shared_exp = PyIndex_Check(exps_obj);
    if (modulus_from_py(m, mod_obj) < 0)
        goto done;
    if (vec_from_seq(&bases, bases_obj, "bases") < 0)
        goto done;
    if (shared_exp) {
        if (mpz_set_pylong(shared, exps_obj, "exponents", 0) < 0)
            goto done;
    } else {
        if (vec_from_seq(&exps, exps_obj, "exponents") < 0)
            goto done;
        if (exps.n != bases.n) {
            PyErr_Format(PyExc_ValueError,
                         "got %zd bases but %zd exponents; they must pair up",
                         bases.n, exps.n);
            goto done;
        }
    }
    if (secret && mpz_even_p(m)) {
        PyErr_SetString(PyExc_ValueError, "secret=True needs an odd modulus");
        goto done;
    }
    Py_ssize_t bad = -1;
    int done_ifma = 0;
#ifdef MP_HAVE_IFMA
    if (bases.n >= IFMA_MIN_LANES && ifma_on() && !(shared_exp && mpz_sgn(shared) <= 0)) {
        Py_BEGIN_ALLOW_THREADS
        ifma_ctx *ctx = ifma_alloc(sizeof(ifma_ctx));
        if (ctx != NULL && ifma_setup(ctx, m)) {
            if (shared_exp) {
                done_ifma = ifma_powmod(bases.v, NULL, shared, bases.n, ctx, secret);
            } else if (!secret) {
                /* negative exponents: invert the base first, as the GMP path does */
                for (Py_ssize_t i = 0; i < bases.n && bad < 0; i++) {
                    if (mpz_sgn(exps.v[i]) < 0) {
                        if (!mpz_invert(bases.v[i], bases.v[i], m))
                            bad = i;
                        else
                            mpz_neg(exps.v[i], exps.v[i]);
                    }
                }
                if (bad < 0)
                    done_ifma = ifma_powmod(bases.v, exps.v, shared, bases.n, ctx, 0);
            }
            ifma_release(ctx);
        }
        free(ctx);
        Py_END_ALLOW_THREADS
    }
#endif
    if (!done_ifma && bad < 0) {
    Py_BEGIN_ALLOW_THREADS
    mpz_t e;
    mpz_init(e);
    for (Py_ssize_t i = 0; i < bases.n; i++) {
        mpz_set(e, shared_exp ? shared : exps.v[i]);
        if (mpz_sgn(e) < 0) {
            if (!mpz_invert(bases.v[i], bases.v[i], m)) {
                bad = i;
                break;
            }
            mpz_neg(e, e);
        }
        if (secret && mpz_sgn(e) > 0)
            mpz_powm_sec(bases.v[i], bases.v[i], e, m);
        else
            mpz_powm(bases.v[i], bases.v[i], e, m);
    }
    mpz_clear(e);
    Py_END_ALLOW_THREADS
    }
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError,
                     "bases[%zd] has no inverse modulo the modulus, so it cannot take a "
                     "negative exponent", bad);
        goto done;
    }
    result = list_from_vec(&bases);
done:
    vec_free(&bases);
    vec_free(&exps);
    mpz_clear(m);
    mpz_clear(shared);
    return result;
}

/* ---------------------------------------------------------------- mulmod, prodmod */

PyDoc_STRVAR(mulmod_doc,
"mulmod(a, b, modulus) -> list[int]\n\na[i] * b[i] mod modulus for every i.");

static PyObject *
native_mulmod(PyObject *self, PyObject *args)
{
    PyObject *a_obj, *b_obj, *mod_obj, *result = NULL;
    if (!PyArg_ParseTuple(args, "OOO", &a_obj, &b_obj, &mod_obj))
        return NULL;
    mpz_t m;
    mpz_init(m);
    mpz_vec a = {0}, b = {0};
    if (modulus_from_py(m, mod_obj) < 0 || vec_from_seq(&a, a_obj, "a") < 0 ||
        vec_from_seq(&b, b_obj, "b") < 0)
        goto done;
    if (a.n != b.n) {
        PyErr_Format(PyExc_ValueError, "got %zd and %zd operands; they must pair up", a.n, b.n);
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < a.n; i++) {
        mpz_mul(a.v[i], a.v[i], b.v[i]);
        mpz_mod(a.v[i], a.v[i], m);
    }
    Py_END_ALLOW_THREADS
    result = list_from_vec(&a);
done:
    vec_free(&a);
    vec_free(&b);
    mpz_clear(m);
    return result;
}

PyDoc_STRVAR(prodmod_doc,
"prodmod(values, modulus) -> int\n\nThe product of all values mod modulus (1 when empty).");

static PyObject *
native_prodmod(PyObject *self, PyObject *args)
{
    PyObject *a_obj, *mod_obj, *result = NULL;
    if (!PyArg_ParseTuple(args, "OO", &a_obj, &mod_obj))
        return NULL;
    mpz_t m, acc;
    mpz_init(m);
    mpz_init_set_ui(acc, 1);
    mpz_vec a = {0};
    if (modulus_from_py(m, mod_obj) < 0 || vec_from_seq(&a, a_obj, "values") < 0)
        goto done;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < a.n; i++) {
        mpz_mul(acc, acc, a.v[i]);
        mpz_mod(acc, acc, m);
    }
    if (a.n == 0)
        mpz_mod(acc, acc, m);
    Py_END_ALLOW_THREADS
    result = pylong_from_mpz(acc);
done:
    vec_free(&a);
    mpz_clear(m);
    mpz_clear(acc);
    return result;
}

/* ---------------------------------------------------------------- fixed-base table */

/* table[j * (2^w - 1) + (d - 1)] = base ** (d * 2^(w*j)) mod m, for d in 1..2^w-1.
 * An exponent of up to max_bits bits then costs ceil(max_bits / w) - 1 multiplications and
 * no squarings. */
typedef struct {
    PyObject_HEAD
    mpz_t modulus;
    mpz_t *rpow;         /* R^j mod m for j = 0..digits+1 when the IFMA path is set up */
    void *ifma;          /* ifma_ctx *, or NULL */
    mpz_t *table;
    Py_ssize_t digits;   /* windows: ceil(max_bits / w) */
    int window;
    Py_ssize_t max_bits;
    size_t table_bytes;
    /* constant-time mode: the table as limbs, 2^w entries of nlimbs a window (entry 0 is 1),
     * read in full by mpn_sec_tabselect for every window, one mpn_sec_mul and mpn_sec_div_r a
     * window whatever the digit; the mpz table above is then freed */
    mp_limb_t *sec;
    mp_size_t nlimbs;
    unsigned long long sec_products;   /* counted for tests: products and entries read */
    unsigned long long sec_reads;
} FixedBaseObject;

static void
FixedBase_dealloc(FixedBaseObject *self)
{
    if (self->table != NULL) {
        Py_ssize_t count = self->digits * (((Py_ssize_t)1 << self->window) - 1);
        for (Py_ssize_t i = 0; i < count; i++)
            mpz_clear(self->table[i]);
        PyMem_RawFree(self->table);
    }
    PyMem_RawFree(self->sec);
    if (self->rpow != NULL) {
        for (Py_ssize_t j = 0; j <= self->digits + 1; j++)
            mpz_clear(self->rpow[j]);
        PyMem_RawFree(self->rpow);
    }
#ifdef MP_HAVE_IFMA
    if (self->ifma != NULL) {
        ifma_release((ifma_ctx *)self->ifma);
        free(self->ifma);
    }
#endif
    mpz_clear(self->modulus);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
FixedBase_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    FixedBaseObject *self = (FixedBaseObject *)type->tp_alloc(type, 0);
    if (self != NULL) {
        mpz_init(self->modulus);
        self->table = NULL;
        self->rpow = NULL;
        self->ifma = NULL;
        self->sec = NULL;
    }
    return (PyObject *)self;
}

static int fixed_base_make_sec(FixedBaseObject *self);

static int
FixedBase_init(FixedBaseObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"base", "modulus", "max_bits", "window", "constant_time", NULL};
    PyObject *base_obj, *mod_obj;
    Py_ssize_t max_bits;
    int window = 8, constant_time = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOn|ip", kwlist, &base_obj, &mod_obj,
                                     &max_bits, &window, &constant_time))
        return -1;
    if (self->table != NULL || self->sec != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "FixedBase is already initialised");
        return -1;
    }
    if (window < 1 || window > 16) {
        PyErr_Format(PyExc_ValueError, "window must be 1 to 16 bits, not %d", window);
        return -1;
    }
    if (max_bits < 1) {
        PyErr_Format(PyExc_ValueError, "max_bits must be positive, not %zd", max_bits);
        return -1;
    }
    if (modulus_from_py(self->modulus, mod_obj) < 0)
        return -1;
    if (constant_time && mpz_cmp_ui(self->modulus, 1) <= 0) {
        PyErr_SetString(PyExc_ValueError, "constant_time needs a modulus above 1");
        return -1;
    }
    mpz_t base;
    mpz_init(base);
    if (mpz_set_pylong(base, base_obj, "base", 0) < 0) {
        mpz_clear(base);
        return -1;
    }
    mpz_mod(base, base, self->modulus);
    self->window = window;
    self->max_bits = max_bits;
    self->digits = (max_bits + window - 1) / window;
    Py_ssize_t per = ((Py_ssize_t)1 << window) - 1;
    Py_ssize_t count = self->digits * per;
    self->table = PyMem_RawMalloc(sizeof(mpz_t) * (size_t)count);
    if (self->table == NULL) {
        mpz_clear(base);
        PyErr_NoMemory();
        return -1;
    }
    size_t limbs = mpz_size(self->modulus);
    Py_BEGIN_ALLOW_THREADS
    mpz_t prod;
    mpz_init(prod);
    for (Py_ssize_t j = 0; j < self->digits; j++) {
        mpz_t *row = self->table + j * per;
        /* entries are allocated at the modulus' size: the table is most of the memory */
        mpz_init2(row[0], limbs * GMP_NUMB_BITS);
        mpz_set(row[0], base);
        for (Py_ssize_t d = 1; d < per; d++) {
            mpz_init2(row[d], limbs * GMP_NUMB_BITS);
            mpz_mul(prod, row[d - 1], base);
            mpz_mod(row[d], prod, self->modulus);
        }
        /* next window's base: base ** (2^w) = row[per-1] * base */
        mpz_mul(prod, row[per - 1], base);
        mpz_mod(base, prod, self->modulus);
    }
    mpz_clear(prod);
    Py_END_ALLOW_THREADS
    mpz_clear(base);
    self->table_bytes = (size_t)count * limbs * sizeof(mp_limb_t);
    if (constant_time)
        return fixed_base_make_sec(self);
#ifdef MP_HAVE_IFMA
    /* ifma_setup itself runs AVX-512 instructions: on a CPU without them it must not be
     * reached at all, or constructing a table kills the process with SIGILL */
    ifma_ctx *ctx = ifma_on() ? ifma_alloc(sizeof(ifma_ctx)) : NULL;
    if (ctx != NULL && ifma_setup(ctx, self->modulus)) {
        self->rpow = PyMem_RawMalloc(sizeof(mpz_t) * (size_t)(self->digits + 2));
        if (self->rpow == NULL) {
            ifma_release(ctx);
            free(ctx);
        } else {
            mpz_init_set_ui(self->rpow[0], 1);
            for (Py_ssize_t j = 1; j <= self->digits + 1; j++) {
                mpz_init(self->rpow[j]);
                mpz_mul(self->rpow[j], self->rpow[j - 1], ctx->Rm);
                mpz_mod(self->rpow[j], self->rpow[j], self->modulus);
            }
            self->ifma = ctx;
        }
    } else {
        free(ctx);
    }
#endif
    return 0;
}

/* The constant-time table: every entry padded to the modulus' limbs, a 1 in front of every
 * window's row, so that a window's product is the same work whatever its digit. */
static int
fixed_base_make_sec(FixedBaseObject *self)
{
    mp_size_t n = (mp_size_t)mpz_size(self->modulus);
    Py_ssize_t per = ((Py_ssize_t)1 << self->window) - 1;
    size_t entries = (size_t)self->digits * ((size_t)per + 1);
    self->sec = PyMem_RawCalloc(entries * (size_t)n, sizeof(mp_limb_t));
    if (self->sec == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->nlimbs = n;
    for (Py_ssize_t j = 0; j < self->digits; j++) {
        mp_limb_t *row = self->sec + (size_t)j * ((size_t)per + 1) * (size_t)n;
        row[0] = 1;
        for (Py_ssize_t d = 1; d <= per; d++) {
            const mpz_t *x = &self->table[j * per + d - 1];
            memcpy(row + (size_t)d * (size_t)n, mpz_limbs_read(*x),
                   mpz_size(*x) * sizeof(mp_limb_t));
        }
    }
    for (size_t i = 0; i < (size_t)self->digits * (size_t)per; i++)
        mpz_clear(self->table[i]);
    PyMem_RawFree(self->table);
    self->table = NULL;
    self->table_bytes = entries * (size_t)n * sizeof(mp_limb_t);
    return 0;
}

/* bits [bit, bit + w) of a zero-padded exponent; branches on the position only */
static mp_limb_t
sec_digit(const mp_limb_t *e, mp_size_t elimbs, mp_bitcnt_t bit, int w)
{
    mp_size_t i = (mp_size_t)(bit / GMP_NUMB_BITS);
    unsigned s = (unsigned)(bit % GMP_NUMB_BITS);
    mp_limb_t v = e[i] >> s;
    if (s != 0 && i + 1 < elimbs)
        v |= e[i + 1] << (GMP_NUMB_BITS - s);
    return v & (((mp_limb_t)1 << w) - 1);
}

static void
fixed_base_pow_sec(const FixedBaseObject *self, mp_limb_t *acc, const mp_limb_t *e,
                   mp_size_t elimbs, mp_limb_t *sel, mp_limb_t *prod, mp_limb_t *scratch)
{
    mp_size_t n = self->nlimbs;
    size_t row = ((size_t)1 << self->window) * (size_t)n;
    const mp_limb_t *m = mpz_limbs_read(self->modulus);
    for (Py_ssize_t j = 0; j < self->digits; j++) {
        mp_limb_t d = sec_digit(e, elimbs, (mp_bitcnt_t)j * (mp_bitcnt_t)self->window,
                                self->window);
        mpn_sec_tabselect(j == 0 ? acc : sel, self->sec + (size_t)j * row, n,
                          (mp_size_t)1 << self->window, (mp_size_t)d);
        if (j == 0)
            continue;
        mpn_sec_mul(prod, acc, n, sel, n, scratch);
        mpn_sec_div_r(prod, 2 * n, m, n, scratch);
        mpn_copyi(acc, prod, n);
    }
}

static PyObject *
fixed_base_pow_sec_batch(FixedBaseObject *self, mpz_vec *exps)
{
    mp_size_t n = self->nlimbs;
    mp_size_t elimbs = (mp_size_t)((self->max_bits + GMP_NUMB_BITS - 1) / GMP_NUMB_BITS) + 1;
    mp_size_t itch = mpn_sec_mul_itch(n, n);
    if (mpn_sec_div_r_itch(2 * n, n) > itch)
        itch = mpn_sec_div_r_itch(2 * n, n);
    mp_limb_t *buf = PyMem_RawMalloc(sizeof(mp_limb_t) * (size_t)(elimbs + 4 * n + itch));
    if (buf == NULL)
        return PyErr_NoMemory();
    mp_limb_t *e = buf, *acc = e + elimbs, *sel = acc + n, *prod = sel + n,
              *scratch = prod + 2 * n;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < exps->n; i++) {
        /* the exponent into a buffer of fixed length (it fits: checked against max_bits) */
        memset(e, 0, sizeof(mp_limb_t) * (size_t)elimbs);
        memcpy(e, mpz_limbs_read(exps->v[i]), mpz_size(exps->v[i]) * sizeof(mp_limb_t));
        fixed_base_pow_sec(self, acc, e, elimbs, sel, prod, scratch);
        mpz_t *out = &exps->v[i];
        mp_limb_t *w = mpz_limbs_write(*out, n);
        mpn_copyi(w, acc, n);
        mpz_limbs_finish(*out, n);
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(buf);
    /* under the GIL: the counts the tests compare (the same for every exponent) */
    self->sec_products += (unsigned long long)exps->n * (unsigned long long)(self->digits - 1);
    self->sec_reads += (unsigned long long)exps->n * (unsigned long long)self->digits *
                       ((unsigned long long)1 << self->window);
    PyObject *result = list_from_vec(exps);
    return result;
}

static void
fixed_base_pow(const FixedBaseObject *self, mpz_t out, const mpz_t e, mpz_t tmp)
{
    Py_ssize_t per = ((Py_ssize_t)1 << self->window) - 1;
    int have = 0;
    for (Py_ssize_t j = 0; j < self->digits; j++) {
        unsigned long d = 0;
        for (int b = self->window - 1; b >= 0; b--)
            d = (d << 1) | (unsigned long)mpz_tstbit(e, (mp_bitcnt_t)(j * self->window + b));
        if (d == 0)
            continue;
        if (!have) {
            mpz_set(out, self->table[j * per + (Py_ssize_t)d - 1]);
            have = 1;
        } else {
            mpz_mul(tmp, out, self->table[j * per + (Py_ssize_t)d - 1]);
            mpz_mod(out, tmp, self->modulus);
        }
    }
    if (!have)
        mpz_set_ui(out, mpz_cmp_ui(self->modulus, 1) == 0 ? 0 : 1);
}

static PyObject *
FixedBase_pow(FixedBaseObject *self, PyObject *arg)
{
    mpz_vec exps = {0};
    if (vec_from_seq(&exps, arg, "exponents") < 0)
        return NULL;
    for (Py_ssize_t i = 0; i < exps.n; i++) {
        if (mpz_sgn(exps.v[i]) < 0 ||
            (Py_ssize_t)mpz_sizeinbase(exps.v[i], 2) > self->max_bits) {
            PyErr_Format(PyExc_ValueError,
                         "exponents[%zd] must be in [0, 2**%zd) for this fixed-base table",
                         i, self->max_bits);
            vec_free(&exps);
            return NULL;
        }
    }
    if (self->sec != NULL) {
        PyObject *result = fixed_base_pow_sec_batch(self, &exps);
        vec_free(&exps);
        return result;
    }
    int done_ifma = 0;
#ifdef MP_HAVE_IFMA
    if (self->ifma != NULL && exps.n >= IFMA_MIN_LANES && ifma_on()) {
        Py_BEGIN_ALLOW_THREADS
        done_ifma = ifma_fixed_base(exps.v, exps.n, self->table, self->digits, self->window,
                                    self->rpow, (ifma_ctx *)self->ifma);
        Py_END_ALLOW_THREADS
    }
#endif
    if (!done_ifma) {
    Py_BEGIN_ALLOW_THREADS
    mpz_t out, tmp;
    mpz_init(out);
    mpz_init(tmp);
    for (Py_ssize_t i = 0; i < exps.n; i++) {
        fixed_base_pow(self, out, exps.v[i], tmp);
        mpz_swap(exps.v[i], out);
    }
    mpz_clear(out);
    mpz_clear(tmp);
    Py_END_ALLOW_THREADS
    }
    PyObject *result = list_from_vec(&exps);
    vec_free(&exps);
    return result;
}

static PyObject *
FixedBase_get_window(FixedBaseObject *self, void *closure)
{
    return PyLong_FromLong(self->window);
}

static PyObject *
FixedBase_get_max_bits(FixedBaseObject *self, void *closure)
{
    return PyLong_FromSsize_t(self->max_bits);
}

static PyObject *
FixedBase_get_table_bytes(FixedBaseObject *self, void *closure)
{
    return PyLong_FromSize_t(self->table_bytes);
}

static PyObject *
FixedBase_get_modulus(FixedBaseObject *self, void *closure)
{
    return pylong_from_mpz(self->modulus);
}

static PyObject *
FixedBase_get_constant_time(FixedBaseObject *self, void *closure)
{
    return PyBool_FromLong(self->sec != NULL);
}

static PyObject *
FixedBase_get_sec_counts(FixedBaseObject *self, void *closure)
{
    return Py_BuildValue("(KK)", self->sec_products, self->sec_reads);
}

static PyObject *
FixedBase_get_ifma(FixedBaseObject *self, void *closure)
{
    return PyBool_FromLong(self->ifma != NULL);
}

static PyMethodDef FixedBase_methods[] = {
    {"pow", (PyCFunction)FixedBase_pow, METH_O,
     "pow(exponents) -> list[int]: base ** e mod modulus for every e (0 <= e < 2**max_bits)."},
    {NULL},
};

static PyGetSetDef FixedBase_getset[] = {
    {"window", (getter)FixedBase_get_window, NULL, "window width in bits", NULL},
    {"max_bits", (getter)FixedBase_get_max_bits, NULL, "largest exponent length", NULL},
    {"table_bytes", (getter)FixedBase_get_table_bytes, NULL, "size of the table", NULL},
    {"modulus", (getter)FixedBase_get_modulus, NULL, "the modulus", NULL},
    {"constant_time", (getter)FixedBase_get_constant_time, NULL,
     "whether powers read the whole table and multiply once a window", NULL},
    {"sec_counts", (getter)FixedBase_get_sec_counts, NULL,
     "(products, table entries read) by constant-time powers so far", NULL},
    {"ifma", (getter)FixedBase_get_ifma, NULL,
     "whether the table was built with an AVX-512 IFMA set-up (its powers use it while "
     "IFMA is on)", NULL},
    {NULL},
};

static PyTypeObject FixedBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "montpipe.driver._native.FixedBase",
    .tp_basicsize = sizeof(FixedBaseObject),
    .tp_dealloc = (destructor)FixedBase_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "FixedBase(base, modulus, max_bits, window=8, constant_time=False): a fixed-base\n"
              "windowed table; constant_time reads every entry and multiplies once a window.",
    .tp_methods = FixedBase_methods,
    .tp_getset = FixedBase_getset,
    .tp_init = (initproc)FixedBase_init,
    .tp_new = FixedBase_new,
};

/* ---------------------------------------------------------------- multi-exponentiation */

/* Signed exponents of one row are kept as little-endian 64-bit limbs of |e| plus a sign. */
typedef struct {
    uint64_t *limbs;   /* rows * cols * nlimbs */
    unsigned char *neg;
    Py_ssize_t rows, cols, nlimbs;
} exp_matrix;

static unsigned long
digit_of(const uint64_t *e, Py_ssize_t nlimbs, Py_ssize_t bit, int c)
{
    Py_ssize_t limb = bit / 64, off = bit % 64;
    if (limb >= nlimbs)
        return 0;
    uint64_t v = e[limb] >> off;
    if (off + c > 64 && limb + 1 < nlimbs)
        v |= e[limb + 1] << (64 - off);
    return (unsigned long)(v & ((1ULL << c) - 1));
}

static int
exp_matrix_from_py(exp_matrix *em, PyObject *rows_obj, Py_ssize_t cols, Py_ssize_t *max_bits)
{
    PyObject *rows = PySequence_Fast(rows_obj, "exponents must be a sequence of rows");
    if (rows == NULL)
        return -1;
    em->rows = PySequence_Fast_GET_SIZE(rows);
    em->cols = cols;
    mpz_t z;
    mpz_init(z);
    /* first pass: bit lengths */
    Py_ssize_t bits = 1;
    mpz_vec all = {0};
    if (vec_alloc(&all, em->rows * cols) < 0)
        goto fail;
    for (Py_ssize_t r = 0; r < em->rows; r++) {
        PyObject *row = PySequence_Fast(PySequence_Fast_GET_ITEM(rows, r),
                                        "each row of exponents must be a sequence");
        if (row == NULL)
            goto fail;
        if (PySequence_Fast_GET_SIZE(row) != cols) {
            PyErr_Format(PyExc_ValueError,
                         "exponent row %zd has %zd entries but there are %zd bases",
                         r, PySequence_Fast_GET_SIZE(row), cols);
            Py_DECREF(row);
            goto fail;
        }
        for (Py_ssize_t i = 0; i < cols; i++) {
            mpz_ptr dst = all.v[r * cols + i];
            if (mpz_set_pylong(dst, PySequence_Fast_GET_ITEM(row, i), "exponents", r * cols + i) < 0) {
                Py_DECREF(row);
                goto fail;
            }
            Py_ssize_t b = (Py_ssize_t)mpz_sizeinbase(dst, 2);
            if (b > bits)
                bits = b;
        }
        Py_DECREF(row);
    }
    em->nlimbs = (bits + 63) / 64;
    em->limbs = PyMem_Calloc((size_t)(em->rows * cols * em->nlimbs + 1), sizeof(uint64_t));
    em->neg = PyMem_Calloc((size_t)(em->rows * cols + 1), 1);
    if (em->limbs == NULL || em->neg == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t k = 0; k < em->rows * cols; k++) {
        em->neg[k] = mpz_sgn(all.v[k]) < 0;
        mpz_abs(z, all.v[k]);
        size_t count = 0;
        mpz_export(em->limbs + k * em->nlimbs, &count, -1, sizeof(uint64_t), 0, 0, z);
    }
    *max_bits = bits;
    vec_free(&all);
    mpz_clear(z);
    Py_DECREF(rows);
    return 0;
fail:
    vec_free(&all);
    mpz_clear(z);
    Py_DECREF(rows);
    return -1;
}

static int
auto_window(Py_ssize_t cols, Py_ssize_t bits)
{
    /* minimise cols * ceil(bits / c) + 2^(c + 2): bucket fill plus both bucket reductions */
    int best = 1;
    double best_cost = 1e300;
    for (int c = 1; c <= 16; c++) {
        double cost = (double)cols * (double)((bits + c - 1) / c) + (double)(1L << (c + 2));
        if (cost < best_cost) {
            best_cost = cost;
            best = c;
        }
    }
    return best;
}

/* sum_{d} d * bucket[d] in the exponent: prod_d bucket[d]^d by running products */
static void
reduce_buckets(mpz_t out, mpz_t *bucket, int *used, long nb, const mpz_t m, mpz_t run, mpz_t tmp)
{
    int have_run = 0, have_out = 0;
    for (long d = nb - 1; d >= 1; d--) {
        if (used[d]) {
            if (have_run) {
                mpz_mul(tmp, run, bucket[d]);
                mpz_mod(run, tmp, m);
            } else {
                mpz_set(run, bucket[d]);
                have_run = 1;
            }
        }
        if (have_run) {
            if (have_out) {
                mpz_mul(tmp, out, run);
                mpz_mod(out, tmp, m);
            } else {
                mpz_set(out, run);
                have_out = 1;
            }
        }
    }
    if (!have_out)
        mpz_set_ui(out, 1);
}

#ifdef MP_HAVE_IFMA
/* Pippenger on IFMA: eight output rows a pass, one per lane. Per-base powers
 * T[i][w] = b_i^(2^(c w)) are computed eight bases a pass and kept in Montgomery form, radix
 * 2^52; each lane's bucket (chosen by its own digit, negative entries in a second set) is
 * gathered, multiplied by the broadcast T and scattered back. Bucket 0 of each set is a dummy
 * that zero digits write to. Returns 0 (nothing changed) when it does not apply. */
#define IFMA_MAX_BUCKET_BITS 12

IFMA_FN static int
ifma_multiexp(mpz_t *bases, Py_ssize_t cols, const exp_matrix *em, int cb, Py_ssize_t W,
              mpz_t *pos, mpz_t *neg, const ifma_ctx *c)
{
    if (cb > IFMA_MAX_BUCKET_BITS)
        return 0;
    const int s = c->s;
    const long nb = 1L << cb;
    size_t per_base = (size_t)W * s * sizeof(uint64_t);
    Py_ssize_t block = (Py_ssize_t)((32u << 20) / per_base);
    if (block < 8)
        block = 8;
    if (block > cols)
        block = cols;
    uint64_t *T = ifma_alloc(per_base * (size_t)(block > 0 ? block : 1));
    __m512i *bk = ifma_alloc(sizeof(__m512i) * (size_t)(2 * nb) * s);
    __m512i *v = ifma_alloc(sizeof(__m512i) * (size_t)s * 4);
    uint64_t *buf = ifma_alloc(sizeof(uint64_t) * 8 * (size_t)s);
    if (T == NULL || bk == NULL || v == NULL || buf == NULL) {
        free(T); free(bk); free(v); free(buf);
        return 0;
    }
    __m512i *x = v, *y = v + s, *run = v + 2 * s, *acc = v + 3 * s;
    mpz_t tmp, part;
    mpz_init(tmp);
    mpz_init(part);
    for (Py_ssize_t start = 0; start < cols; start += block) {
        Py_ssize_t len = cols - start < block ? cols - start : block;
        for (Py_ssize_t g = 0; g < len; g += 8) {
            int lanes = len - g < 8 ? (int)(len - g) : 8;
            memset(buf, 0, sizeof(uint64_t) * 8 * (size_t)s);
            for (int L = 0; L < lanes; L++) {
                mpz_mod(tmp, bases[start + g + L], c->M);
                ifma_stage(buf, L, tmp, s);
            }
            ifma_load(x, buf, s);
            ifma_mul(x, x, c->r2, c);
            for (Py_ssize_t w = 0; w < W; w++) {
                if (w > 0)
                    for (int t = 0; t < cb; t++)
                        ifma_sqr(x, x, c);
                ifma_store(buf, x, s);
                for (int L = 0; L < lanes; L++) {
                    uint64_t *dst = T + ((size_t)(g + L) * W + w) * s;
                    for (int k = 0; k < s; k++)
                        dst[k] = buf[8 * k + L];
                }
            }
        }
        for (Py_ssize_t rg = 0; rg < em->rows; rg += 8) {
            int lanes = em->rows - rg < 8 ? (int)(em->rows - rg) : 8;
            for (long d = 0; d < 2 * nb; d++)
                memcpy(bk + (size_t)d * s, c->rm, sizeof(__m512i) * s);
            int used_neg = 0;
            for (Py_ssize_t i = 0; i < len; i++) {
                for (Py_ssize_t w = 0; w < W; w++) {
                    long long idx[8];
                    int any = 0;
                    for (int L = 0; L < 8; L++) {
                        idx[L] = L; /* dummy bucket 0 of the positive set, own lane */
                        if (L >= lanes)
                            continue;
                        Py_ssize_t k = (rg + L) * em->cols + start + i;
                        unsigned long d = digit_of(em->limbs + k * em->nlimbs, em->nlimbs,
                                                   w * cb, cb);
                        if (d) {
                            idx[L] = ((long long)d + (em->neg[k] ? nb : 0)) * s * 8 + L;
                            used_neg |= em->neg[k];
                            any = 1;
                        }
                    }
                    if (!any)
                        continue;
                    __m512i vi = _mm512_loadu_si512((const void *)idx);
                    const uint64_t *t = T + ((size_t)i * W + w) * s;
                    for (int k = 0; k < s; k++) {
                        __m512i off = _mm512_add_epi64(vi, _mm512_set1_epi64((long long)k * 8));
                        x[k] = _mm512_i64gather_epi64(off, (const void *)bk, 8);
                        y[k] = _mm512_set1_epi64((long long)t[k]);
                    }
                    ifma_mul(x, x, y, c);
                    for (int k = 0; k < s; k++) {
                        __m512i off = _mm512_add_epi64(vi, _mm512_set1_epi64((long long)k * 8));
                        _mm512_i64scatter_epi64((void *)bk, off, x[k], 8);
                    }
                }
            }
            for (int set = 0; set < 2; set++) {
                if (set == 1 && !used_neg)
                    continue;
                memcpy(run, c->rm, sizeof(__m512i) * s);
                memcpy(acc, c->rm, sizeof(__m512i) * s);
                for (long d = nb - 1; d >= 1; d--) {
                    ifma_mul(run, run, bk + (size_t)(set * nb + d) * s, c);
                    ifma_mul(acc, acc, run, c);
                }
                ifma_mul(acc, acc, c->one, c);
                ifma_store(buf, acc, s);
                for (int L = 0; L < lanes; L++) {
                    ifma_unstage(buf, L, part, c);
                    mpz_t *dst = set ? neg : pos;
                    mpz_mul(tmp, dst[rg + L], part);
                    mpz_mod(dst[rg + L], tmp, c->M);
                }
            }
        }
    }
    mpz_clear(tmp);
    mpz_clear(part);
    free(T); free(bk); free(v); free(buf);
    return 1;
}
#endif

PyDoc_STRVAR(multiexp_doc,
"multiexp(bases, exponents, modulus, window=0) -> (positive, negative)\n\n"
"For every row r of the signed exponent matrix ``exponents`` (one entry per base), the\n"
"product of bases[i] ** |e[r][i]| mod modulus over the positive entries and over the\n"
"negative entries separately, so the caller needs one inversion per row at most.\n"
"Pippenger's bucket method with the per-base powers b ** 2^(c*k) shared by all rows;\n"
"window=0 picks the bucket width c that minimises the multiplication count.");

static PyObject *
native_multiexp(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"bases", "exponents", "modulus", "window", NULL};
    PyObject *bases_obj, *exps_obj, *mod_obj, *result = NULL;
    int window = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|i", kwlist,
                                     &bases_obj, &exps_obj, &mod_obj, &window))
        return NULL;
    mpz_t m;
    mpz_init(m);
    mpz_vec bases = {0}, pos = {0}, neg = {0};
    exp_matrix em = {0};
    Py_ssize_t bits = 1;
    if (modulus_from_py(m, mod_obj) < 0 || vec_from_seq(&bases, bases_obj, "bases") < 0)
        goto done;
    if (exp_matrix_from_py(&em, exps_obj, bases.n, &bits) < 0)
        goto done;
    if (window < 0 || window > 16) {
        PyErr_Format(PyExc_ValueError, "window must be 0 (automatic) to 16, not %d", window);
        goto done;
    }
    int c = window ? window : auto_window(bases.n, bits);
    Py_ssize_t W = (bits + c - 1) / c;
    long nb = 1L << c;
    if (vec_alloc(&pos, em.rows) < 0 || vec_alloc(&neg, em.rows) < 0)
        goto done;
#ifdef MP_HAVE_IFMA
    if (em.rows >= IFMA_MIN_LANES && bases.n > 0 && ifma_on()) {
        int ok = 0;
        Py_BEGIN_ALLOW_THREADS
        ifma_ctx *ctx = ifma_alloc(sizeof(ifma_ctx));
        if (ctx != NULL && ifma_setup(ctx, m)) {
            for (Py_ssize_t r = 0; r < em.rows; r++) {
                mpz_set_ui(pos.v[r], 1);
                mpz_set_ui(neg.v[r], 1);
            }
            ok = ifma_multiexp(bases.v, bases.n, &em, c, W, pos.v, neg.v, ctx);
            ifma_release(ctx);
        }
        free(ctx);
        Py_END_ALLOW_THREADS
        if (ok) {
            PyObject *p = list_from_vec(&pos), *n = p ? list_from_vec(&neg) : NULL;
            if (p && n)
                result = PyTuple_Pack(2, p, n);
            Py_XDECREF(p);
            Py_XDECREF(n);
            goto done;
        }
    }
#endif
    /* bases are processed in blocks so the table of powers stays near 32 MiB */
    size_t bytes_per_base = (size_t)W * (mpz_size(m) + 1) * sizeof(mp_limb_t) * 2;
    Py_ssize_t block = (Py_ssize_t)((32u << 20) / (bytes_per_base ? bytes_per_base : 1));
    if (block < 64)
        block = 64;
    mpz_t *T = PyMem_RawMalloc(sizeof(mpz_t) * (size_t)(block * W + 1));
    mpz_t *bp = PyMem_RawMalloc(sizeof(mpz_t) * (size_t)nb);
    mpz_t *bn = PyMem_RawMalloc(sizeof(mpz_t) * (size_t)nb);
    int *up = PyMem_RawCalloc((size_t)nb, sizeof(int));
    int *un = PyMem_RawCalloc((size_t)nb, sizeof(int));
    if (T == NULL || bp == NULL || bn == NULL || up == NULL || un == NULL) {
        PyMem_RawFree(T); PyMem_RawFree(bp); PyMem_RawFree(bn);
        PyMem_RawFree(up); PyMem_RawFree(un);
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    mpz_t tmp, run, part;
    mpz_init(tmp);
    mpz_init(run);
    mpz_init(part);
    for (Py_ssize_t k = 0; k < block * W; k++)
        mpz_init(T[k]);
    for (long d = 0; d < nb; d++) {
        mpz_init(bp[d]);
        mpz_init(bn[d]);
    }
    for (Py_ssize_t r = 0; r < em.rows; r++) {
        mpz_set_ui(pos.v[r], 1);
        mpz_set_ui(neg.v[r], 1);
    }
    for (Py_ssize_t start = 0; start < bases.n; start += block) {
        Py_ssize_t len = bases.n - start < block ? bases.n - start : block;
        for (Py_ssize_t i = 0; i < len; i++) {
            mpz_mod(T[i * W], bases.v[start + i], m);
            for (Py_ssize_t w = 1; w < W; w++) {
                mpz_set(tmp, T[i * W + w - 1]);
                for (int s = 0; s < c; s++) {
                    mpz_mul(tmp, tmp, tmp);
                    mpz_mod(tmp, tmp, m);
                }
                mpz_set(T[i * W + w], tmp);
            }
        }
        for (Py_ssize_t r = 0; r < em.rows; r++) {
            memset(up, 0, sizeof(int) * (size_t)nb);
            memset(un, 0, sizeof(int) * (size_t)nb);
            for (Py_ssize_t i = 0; i < len; i++) {
                Py_ssize_t k = r * em.cols + start + i;
                const uint64_t *e = em.limbs + k * em.nlimbs;
                mpz_t *bk = em.neg[k] ? bn : bp;
                int *uk = em.neg[k] ? un : up;
                for (Py_ssize_t w = 0; w < W; w++) {
                    unsigned long d = digit_of(e, em.nlimbs, w * c, c);
                    if (d == 0)
                        continue;
                    if (uk[d]) {
                        mpz_mul(tmp, bk[d], T[i * W + w]);
                        mpz_mod(bk[d], tmp, m);
                    } else {
                        mpz_set(bk[d], T[i * W + w]);
                        uk[d] = 1;
                    }
                }
            }
            reduce_buckets(part, bp, up, nb, m, run, tmp);
            mpz_mul(tmp, pos.v[r], part);
            mpz_mod(pos.v[r], tmp, m);
            reduce_buckets(part, bn, un, nb, m, run, tmp);
            mpz_mul(tmp, neg.v[r], part);
            mpz_mod(neg.v[r], tmp, m);
        }
    }
    for (Py_ssize_t k = 0; k < block * W; k++)
        mpz_clear(T[k]);
    for (long d = 0; d < nb; d++) {
        mpz_clear(bp[d]);
        mpz_clear(bn[d]);
    }
    mpz_clear(tmp);
    mpz_clear(run);
    mpz_clear(part);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(T); PyMem_RawFree(bp); PyMem_RawFree(bn);
    PyMem_RawFree(up); PyMem_RawFree(un);
    PyObject *p = list_from_vec(&pos), *n = p ? list_from_vec(&neg) : NULL;
    if (p && n)
        result = PyTuple_Pack(2, p, n);
    Py_XDECREF(p);
    Py_XDECREF(n);
done:
    PyMem_Free(em.limbs);
    PyMem_Free(em.neg);
    vec_free(&bases);
    vec_free(&pos);
    vec_free(&neg);
    mpz_clear(m);
    return result;
}

/* ---------------------------------------------------------------- IFMA switch */

PyDoc_STRVAR(ifma_doc,
"ifma(enable=None) -> bool\n\n"
"Whether the AVX-512 IFMA kernels are in use. ``enable=False`` turns them off (GMP only),\n"
"``True`` back on where the CPU and OS support them. For tests and benchmarks.");

static PyObject *
native_ifma(PyObject *self, PyObject *args)
{
    PyObject *enable = Py_None;
    if (!PyArg_ParseTuple(args, "|O", &enable))
        return NULL;
#ifdef MP_HAVE_IFMA
    if (enable != Py_None) {
        int want = PyObject_IsTrue(enable);
        if (want < 0)
            return NULL;
        ifma_enabled = want ? ifma_probe() : 0;
    }
    return PyBool_FromLong(ifma_on());
#else
    Py_RETURN_FALSE;
#endif
}

/* ---------------------------------------------------------------- module */

static PyMethodDef native_methods[] = {
    {"powmod", (PyCFunction)(void (*)(void))native_powmod, METH_VARARGS | METH_KEYWORDS,
     powmod_doc},
    {"mulmod", native_mulmod, METH_VARARGS, mulmod_doc},
    {"ifma", native_ifma, METH_VARARGS, ifma_doc},
    {"prodmod", native_prodmod, METH_VARARGS, prodmod_doc},
    {"multiexp", (PyCFunction)(void (*)(void))native_multiexp, METH_VARARGS | METH_KEYWORDS,
     multiexp_doc},
    {NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "montpipe.driver._native",
    .m_doc = "GIL-free batch big-integer kernels on the system GMP.",
    .m_size = -1,
    .m_methods = native_methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    if (PyType_Ready(&FixedBaseType) < 0)
        return NULL;
    PyObject *mod = PyModule_Create(&native_module);
    if (mod == NULL)
        return NULL;
    Py_INCREF(&FixedBaseType);
    if (PyModule_AddObject(mod, "FixedBase", (PyObject *)&FixedBaseType) < 0) {
        Py_DECREF(&FixedBaseType);
        Py_DECREF(mod);
        return NULL;
    }
    if (PyModule_AddStringConstant(mod, "gmp_version", gmp_version) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
