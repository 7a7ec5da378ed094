/* image.c - one PNG or JPEG file into channels x height x width samples, the way torchvision's
 * PIL pipeline sees it: Image.open(f).convert("L" | "RGB").resize((w, h), BILINEAR).
 *
 * The format is chosen by the file's first bytes, never its name. libpng and libjpeg report
 * errors by longjmp out of their calls; each decoder keeps everything it allocates in a struct
 * reached through a pointer (not in locals changed after setjmp), so the jump target frees it
 * all. Warnings are never printed: libpng's are dropped, libjpeg's corrupt-data warnings are
 * errors (a truncated JPEG would otherwise decode to a silently grey image).
 * Conversions follow Pillow 9: RGB -> L is its fixed-point ITU-R 601-2 luma, alpha is dropped,
 * palettes expand, 16-bit samples keep their high byte. The resize is Pillow's separable,
 * antialiased bilinear filter with its 22-bit fixed-point coefficients and rounding, so the
 * bytes match PIL's. Not here: folders of images (image_folder.c), augmentation (augment.c).
 */
#include "dataset.h"

#include <errno.h>
#include <jpeglib.h>
#include <jerror.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <string.h>

/* Bounds a hostile header cannot push past: 2^26 pixels (e.g. 8192 x 8192) and 1 GiB files. */
#define MAX_PIXELS ((int64_t)1 << 26)
#define MAX_FILE ((int64_t)1 << 30)
#define PRECISION_BITS (32 - 8 - 2)

/* Decoded pixels, interleaved: h rows of w * c bytes, c = 1 or 3. */
typedef struct {
    unsigned char *px;
    int w, h, c;
} image8;

static tk_status too_large(const char *name, int64_t w, int64_t h, tk_ctx *ctx)
{
    return tk_fail(ctx, TK_ERR_INPUT, "%s: image of %lld x %lld pixels is too large (at most "
                   "%lld pixels)", name, (long long)w, (long long)h, (long long)MAX_PIXELS);
}

/* ---------------------------------------------------------------- PNG */

typedef struct {
    const unsigned char *data;
    size_t len, pos;
    bool truncated;
    char msg[200];
    jmp_buf jb;
    png_structp png;
    png_infop info;
    png_bytep *rows;
    image8 *im;
} png_job;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    longjmp(j->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep out, size_t n)
{
    png_job *j = png_get_io_ptr(png);
    if (n > j->len - j->pos) {
        j->truncated = true;
        png_error(png, "unexpected end of file");
    }
    memcpy(out, j->data + j->pos, n);
    j->pos += n;
}

static tk_status decode_png(png_job *j, const char *name, tk_ctx *ctx)
{
    image8 *im = j->im;
    j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j, png_on_error, png_on_warning);
    if (!j->png || !(j->info = png_create_info_struct(j->png)))
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", name);
    if (setjmp(j->jb))
        return j->truncated ? tk_fail(ctx, TK_ERR_INPUT, "%s: truncated PNG file", name)
                            : tk_fail(ctx, TK_ERR_INPUT, "%s: corrupt PNG file (%s)", name,
                                      j->msg);
    png_set_read_fn(j->png, j, png_on_read);
    png_set_user_limits(j->png, 1u << 20, 1u << 20);
    png_set_chunk_malloc_max(j->png, 1u << 26);
    png_read_info(j->png, j->info);
    png_uint_32 w = png_get_image_width(j->png, j->info);
    png_uint_32 h = png_get_image_height(j->png, j->info);
    if ((int64_t)w * h > MAX_PIXELS)
        return too_large(name, w, h, ctx);
    int type = png_get_color_type(j->png, j->info);
    png_set_strip_16(j->png);
    png_set_strip_alpha(j->png);
    png_set_packing(j->png);
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(j->png);
    if (type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(j->png, j->info) < 8)
        png_set_expand_gray_1_2_4_to_8(j->png);
    int passes = png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);
    int c = png_get_channels(j->png, j->info);
    if (c != 1 && c != 3)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: PNG with %d channels after conversion", name, c);
    im->w = (int)w;
    im->h = (int)h;
    im->c = c;
    size_t stride = (size_t)w * (size_t)c;
    if (png_get_rowbytes(j->png, j->info) != stride)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: unexpected PNG row size", name);
    /* A non-interlaced image grows its buffer row by row, so a header that claims a huge
     * image in a small file fails on the missing rows, not on a huge allocation. */
    size_t cap = passes > 1 ? h : (h < 64 ? h : 64);
    if (!(im->px = tk_malloc(cap * stride)))
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", name);
    if (passes > 1) {
        if (!(j->rows = tk_malloc(h * sizeof *j->rows)))
            return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", name);
        for (png_uint_32 y = 0; y < h; y++)
            j->rows[y] = im->px + y * stride;
        png_read_image(j->png, j->rows);
    } else {
        for (png_uint_32 y = 0; y < h; y++) {
            if (y == cap) {
                size_t next = cap * 2 < h ? cap * 2 : h;
                unsigned char *p = tk_realloc(im->px, cap * stride, next * stride);
                if (!p)
                    return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", name);
                im->px = p;
                cap = next;
            }
            png_read_row(j->png, im->px + y * stride, NULL);
        }
    }
    png_read_end(j->png, NULL);
    return TK_OK;
}

static tk_status read_png(const unsigned char *data, size_t len, const char *name, image8 *im,
                          tk_ctx *ctx)
{
    png_job *j = tk_calloc(1, sizeof *j);
    if (!j)
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", name);
    j->data = data;
    j->len = len;
    j->im = im;
    tk_status st = decode_png(j, name, ctx);
    png_destroy_read_struct(j->png ? &j->png : NULL, j->info ? &j->info : NULL, NULL);
    tk_free(j->rows);
    tk_free(j);
    return st;
}

/* ---------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr err; /* first: libjpeg hands back a pointer to it */
    jmp_buf jb;
    struct jpeg_decompress_struct cinfo;
    bool created;
    image8 *im;
} jpeg_job;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_job *j = (jpeg_job *)cinfo->err;
    longjmp(j->jb, 1);
}

/* Level -1 is a warning about corrupt data: fatal, except for stray bytes between markers,
 * which many encoders leave and every decoder ignores. Trace messages (>= 0) are dropped. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->msg_code != JWRN_EXTRANEOUS_DATA)
        jpeg_on_error(cinfo);
}

static void jpeg_on_output(j_common_ptr cinfo)
{
    (void)cinfo;
}

static tk_status decode_jpeg(jpeg_job *j, const unsigned char *data, size_t len,
                             const char *name, tk_ctx *ctx)
{
    image8 *im = j->im;
    j->cinfo.err = jpeg_std_error(&j->err);
    j->err.error_exit = jpeg_on_error;
    j->err.emit_message = jpeg_on_message;
    j->err.output_message = jpeg_on_output;
    if (setjmp(j->jb)) {
        char msg[JMSG_LENGTH_MAX];
        j->err.format_message((j_common_ptr)&j->cinfo, msg);
        if (j->err.msg_code == JWRN_JPEG_EOF || j->err.msg_code == JERR_INPUT_EOF)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: truncated JPEG file", name);
        return tk_fail(ctx, TK_ERR_INPUT, "%s: corrupt JPEG file (%s)", name, msg);
    }
    jpeg_create_decompress(&j->cinfo);
    j->created = true;
    j->cinfo.mem->max_memory_to_use = 1L << 30;
    jpeg_mem_src(&j->cinfo, data, (unsigned long)len);
    jpeg_read_header(&j->cinfo, TRUE);
    struct jpeg_decompress_struct *ci = &j->cinfo;
    if ((int64_t)ci->image_width * ci->image_height > MAX_PIXELS)
        return too_large(name, ci->image_width, ci->image_height, ctx);
    if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: CMYK JPEG files are not supported (convert it "
                       "to RGB)", name);
    /* Grey stays grey; everything else decodes to RGB, as PIL does before any convert(). */
    ci->out_color_space = ci->jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(ci);
    im->w = (int)ci->output_width;
    im->h = (int)ci->output_height;
    im->c = ci->output_components;
    size_t stride = (size_t)im->w * (size_t)im->c;
    size_t h = (size_t)im->h, cap = h < 64 ? h : 64;
    if (!(im->px = tk_malloc(cap * stride)))
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", name);
    while (ci->output_scanline < ci->output_height) {
        size_t y = ci->output_scanline;
        if (y == cap) {
            size_t next = cap * 2 < h ? cap * 2 : h;
            unsigned char *p = tk_realloc(im->px, cap * stride, next * stride);
            if (!p)
                return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", name);
            im->px = p;
            cap = next;
        }
        JSAMPROW row = im->px + y * stride;
        jpeg_read_scanlines(ci, &row, 1);
    }
    jpeg_finish_decompress(ci);
    return TK_OK;
}

static tk_status read_jpeg(const unsigned char *data, size_t len, const char *name, image8 *im,
                           tk_ctx *ctx)
{
    jpeg_job *j = tk_calloc(1, sizeof *j);
    if (!j)
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", name);
    j->im = im;
    tk_status st = decode_jpeg(j, data, len, name, ctx);
    if (j->created)
        jpeg_destroy_decompress(&j->cinfo);
    tk_free(j);
    return st;
}

/* ---------------------------------------------------------------- conversion, resize */

/* Pillow's L24: ITU-R 601-2 luma in 16-bit fixed point, rounded. */
static unsigned char luma(const unsigned char *p)
{
    return (unsigned char)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
}

static tk_status convert(image8 *im, int channels, const char *name, tk_ctx *ctx)
{
    if (im->c == channels)
        return TK_OK;
    size_t n = (size_t)im->w * (size_t)im->h;
    unsigned char *out = tk_malloc(n * (size_t)channels);
    if (!out)
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", name);
    for (size_t i = 0; i < n; i++) {
        if (channels == 1)
            out[i] = luma(im->px + 3 * i);
        else
            out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = im->px[i];
    }
    tk_free(im->px);
    im->px = out;
    im->c = channels;
    return TK_OK;
}

/* Pillow's precompute_coeffs for the bilinear (triangle) filter: the window of input pixels
 * and their fixed-point weights for each of the out_size outputs. A downscale widens the
 * filter by the scale (antialiasing). */
typedef struct {
    int ksize;
    int *bounds;               /* out_size pairs (first input, count) */
    int32_t *k;                /* out_size * ksize weights */
} coeffs;

static bool precompute(int in_size, int out_size, coeffs *cf)
{
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    cf->ksize = (int)ceil(support) * 2 + 1;
    cf->bounds = tk_malloc((size_t)out_size * 2 * sizeof(int));
    cf->k = tk_calloc((size_t)out_size * (size_t)cf->ksize, sizeof(int32_t));
    double *w = tk_malloc((size_t)cf->ksize * sizeof(double));
    if (!cf->bounds || !cf->k || !w) {
        tk_free(w);
        return false;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ss = 1.0 / filterscale, ww = 0.0;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        xmin = xmin < 0 ? 0 : xmin;
        xmax = (xmax > in_size ? in_size : xmax) - xmin;
        for (int x = 0; x < xmax; x++) {
            double t = fabs((x + xmin - center + 0.5) * ss);
            w[x] = t < 1.0 ? 1.0 - t : 0.0;
            ww += w[x];
        }
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            cf->k[xx * cf->ksize + x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS)
                                                        : 0.5 + v * (1 << PRECISION_BITS));
        }
        cf->bounds[2 * xx] = xmin;
        cf->bounds[2 * xx + 1] = xmax;
    }
    tk_free(w);
    return true;
}

static unsigned char clip8(int64_t v)
{
    if (v >= (int64_t)1 << PRECISION_BITS << 8)
        return 255;
    return v <= 0 ? 0 : (unsigned char)(v >> PRECISION_BITS);
}

/* One pass of the separable filter, along x or (vert) along y, into an h_out x w_out image of
 * c-byte pixels; w_in is the input's row width. Each pass rounds to bytes, as Pillow does. */
static void resample(const unsigned char *in, unsigned char *out, const coeffs *cf, bool vert,
                     int w_in, int w_out, int h_out, int c)
{
    for (int y = 0; y < h_out; y++)
        for (int x = 0; x < w_out; x++) {
            int o = vert ? y : x;
            int first = cf->bounds[2 * o], count = cf->bounds[2 * o + 1];
            const int32_t *k = cf->k + (size_t)o * (size_t)cf->ksize;
            for (int ch = 0; ch < c; ch++) {
                int64_t s = 1 << (PRECISION_BITS - 1);
                for (int i = 0; i < count; i++) {
                    size_t at = vert ? ((size_t)(first + i) * (size_t)w_in + (size_t)x)
                                     : ((size_t)y * (size_t)w_in + (size_t)(first + i));
                    s += (int64_t)in[at * (size_t)c + (size_t)ch] * k[i];
                }
                out[((size_t)y * (size_t)w_out + (size_t)x) * (size_t)c + (size_t)ch] = clip8(s);
            }
        }
}

static tk_status resize(image8 *im, int height, int width, const char *name, tk_ctx *ctx)
{
    if (im->w == width && im->h == height)
        return TK_OK;
    coeffs ch = {0}, cv = {0};
    unsigned char *tmp = NULL, *out = NULL;
    tk_status st = TK_OK;
    bool ok = precompute(im->w, width, &ch) && precompute(im->h, height, &cv);
    ok = ok && (tmp = tk_malloc((size_t)width * (size_t)im->h * (size_t)im->c)) &&
         (out = tk_malloc((size_t)width * (size_t)height * (size_t)im->c));
    if (ok) {
        /* Horizontal first, then vertical; a pass whose size does not change is skipped. */
        const unsigned char *src = im->px;
        if (im->w != width) {
            resample(src, tmp, &ch, false, im->w, width, im->h, im->c);
            src = tmp;
        }
        if (im->h != height)
            resample(src, out, &cv, true, width, width, height, im->c);
        else
            memcpy(out, src, (size_t)width * (size_t)height * (size_t)im->c);
        tk_free(im->px);
        im->px = out;
        im->w = width;
        im->h = height;
        out = NULL;
    } else {
        st = tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory resizing", name);
    }
    tk_free(ch.bounds);
    tk_free(ch.k);
    tk_free(cv.bounds);
    tk_free(cv.k);
    tk_free(tmp);
    tk_free(out);
    return st;
}

/* ---------------------------------------------------------------- entry points */

tk_status tk_image_decode(const void *data, size_t len, const char *name, int channels,
                          int height, int width, unsigned char **out, int *out_h, int *out_w,
                          tk_ctx *ctx)
{
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const unsigned char *b = data;
    *out = NULL;
    if (channels != 1 && channels != 3)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: channels must be 1 or 3 (got %d)", name,
                       channels);
    if (height < 0 || width < 0 || (int64_t)height * width > MAX_PIXELS)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: bad target size %d x %d", name, height, width);
    image8 im = {0};
    tk_status st;
    if (len >= 8 && memcmp(b, png_sig, 8) == 0)
        st = read_png(b, len, name, &im, ctx);
    else if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        st = read_jpeg(b, len, name, &im, ctx);
    else
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: not a PNG or JPEG file%s", name,
                     len == 0 ? " (it is empty)" : "");
    if (!st && (im.w == 0 || im.h == 0))
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: image has no pixels", name);
    if (!st)
        st = convert(&im, channels, name, ctx);
    if (!st && height > 0 && width > 0)
        st = resize(&im, height, width, name, ctx);
    if (st) {
        tk_free(im.px);
        return st;
    }
    /* Interleaved rows -> planes (channels x h x w), in place for grey. */
    if (channels == 3) {
        size_t n = (size_t)im.w * (size_t)im.h;
        unsigned char *planes = tk_malloc(3 * n);
        if (!planes) {
            tk_free(im.px);
            return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", name);
        }
        for (size_t i = 0; i < n; i++)
            for (int ch = 0; ch < 3; ch++)
                planes[(size_t)ch * n + i] = im.px[3 * i + (size_t)ch];
        tk_free(im.px);
        im.px = planes;
    }
    *out = im.px;
    *out_h = im.h;
    *out_w = im.w;
    return TK_OK;
}

tk_status tk_data_slurp(const char *path, unsigned char **out, size_t *len, tk_ctx *ctx)
{
    *out = NULL;
    *len = 0;
    errno = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return tk_fail(ctx, TK_ERR_INPUT, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, got = 0;
    unsigned char *buf = tk_malloc(cap);
    tk_status st = buf ? TK_OK : tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", path);
    while (!st) {
        got += fread(buf + got, 1, cap - got, f);
        if (got < cap)
            break;
        if ((int64_t)cap >= MAX_FILE) {
            st = tk_fail(ctx, TK_ERR_INPUT, "%s: file larger than %lld bytes", path,
                         (long long)MAX_FILE);
            break;
        }
        unsigned char *p = tk_realloc(buf, cap, cap * 2);
        if (!p)
            st = tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", path);
        else
            buf = p, cap *= 2;
    }
    if (!st && ferror(f))
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: read error: %s", path, strerror(errno));
    fclose(f);
    if (st) {
        tk_free(buf);
        return st;
    }
    *out = buf;
    *len = got;
    return TK_OK;
}

tk_status tk_image_load(const char *path, int channels, int height, int width,
                        unsigned char **out, int *out_h, int *out_w, tk_ctx *ctx)
{
    unsigned char *bytes;
    size_t len;
    tk_status st = tk_data_slurp(path, &bytes, &len, ctx);
    if (st)
        return st;
    st = tk_image_decode(bytes, len, path, channels, height, width, out, out_h, out_w, ctx);
    tk_free(bytes);
    return st;
}

tk_status tk_image_read(const char *path, int channels, int height, int width, float *out,
                        tk_ctx *ctx)
{
    if (height < 1 || width < 1)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: image size must be at least 1 x 1 (got %d x "
                       "%d)", path, height, width);
    unsigned char *px;
    int h, w;
    tk_status st = tk_image_load(path, channels, height, width, &px, &h, &w, ctx);
    if (st)
        return st;
    size_t n = (size_t)channels * (size_t)h * (size_t)w;
    for (size_t i = 0; i < n; i++)
        out[i] = (float)px[i];
    tk_free(px);
    return TK_OK;
}
