/* test_image.c - tk_image_read against torchvision 0.14 / Pillow 9.4 (the fixtures of
 * tests/gen_fixtures_images.py: PNG grey/RGB/RGBA/palette/1-bit, baseline/progressive/grey
 * JPEG, a JPEG named .png), byte for byte, with and without resizing; truncated, corrupt,
 * empty and foreign files are errors naming the file. tk_dataset_images over a folder tree
 * the test writes: class and file order (nested folders), labels, class names, where(),
 * size mismatches, empty classes, unreadable formats and a corrupt member; the list form
 * (string or integer labels, named or numbered columns, root as base) and its errors. */
#include "check.h"
#include "data/dataset.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *dir;

static const char *fixture(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/images/%s", TK_FIXTURES, name);
    return buf;
}

static const char *file_of(const char *stem)
{
    static const char *const map[][2] = {
        {"rgb", "rgb.png"}, {"grey", "grey.png"}, {"rgba", "rgba.png"},
        {"palette", "palette.png"}, {"bits", "bits.png"}, {"rgb_jpg", "rgb.jpg"},
        {"grey_jpg", "grey.jpg"}, {"progressive", "progressive.jpg"},
        {"jpeg_named", "jpeg_named.png"},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(map[i][0], stem) == 0)
            return map[i][1];
    return NULL;
}

static void test_against_torchvision(void)
{
    tk_ctx *ctx = tk_ctx_new();
    tk_st_file *st = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/images.safetensors", TK_FIXTURES);
    CHECK(tk_st_load(path, &st, ctx) == TK_OK);
    if (!st) {
        tk_ctx_free(ctx);
        return;
    }
    int cases = 0, resized = 0;
    for (int i = 0; i < tk_st_count(st); i++) {
        const char *name = tk_st_name(st, i);
        char stem[64];
        int c, h, w;
        const char *dot = strchr(name, '.');
        if (!dot || sscanf(dot + 1, "%d_%dx%d", &c, &h, &w) != 3)
            continue;
        snprintf(stem, sizeof stem, "%.*s", (int)(dot - name), name);
        const char *file = file_of(stem);
        CHECK_MSG(file != NULL, "fixture %s", name);
        if (!file)
            continue;
        tk_shape s = tk_st_shape(st, i);
        int eh = (int)s.d[1], ew = (int)s.d[2];
        CHECK(s.ndim == 3 && s.d[0] == c && (h == 0 || (eh == h && ew == w)));
        float *out = tk_alloc_floats((size_t)c * (size_t)eh * (size_t)ew);
        tk_status rc = tk_image_read(fixture(file), c, eh, ew, out, ctx);
        CHECK_MSG(rc == TK_OK, "%s: %s", name, tk_errmsg(ctx));
        const float *want = tk_st_data(st, i);
        int bad = 0;
        for (int k = 0; rc == TK_OK && k < c * eh * ew; k++)
            bad += out[k] != want[k];
        CHECK_MSG(bad == 0, "%s: %d of %d values differ", name, bad, c * eh * ew);
        tk_free_aligned(out);
        cases++;
        resized += h > 0;
    }
    CHECK(cases == 63 && resized == 45);
    tk_st_free(st);
    tk_ctx_free(ctx);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    unsigned char *b = NULL;
    tk_ctx *ctx = tk_ctx_new();
    CHECK(tk_data_slurp(path, &b, len, ctx) == TK_OK);
    tk_ctx_free(ctx);
    return b;
}

static const char *write_bytes(const char *name, const unsigned char *b, size_t len)
{
    const char *p = check_path(dir, name);
    FILE *f = fopen(p, "wb");
    fwrite(b, 1, len, f);
    fclose(f);
    return p;
}

/* tk_image_read of `path` fails with exit code 2 and a message naming it and saying `what`. */
static void check_bad(const char *path, const char *what)
{
    tk_ctx *ctx = tk_ctx_new();
    float out[3 * 8 * 8];
    tk_status rc = tk_image_read(path, 3, 8, 8, out, ctx);
    CHECK_MSG(rc == TK_ERR_INPUT, "%s: status %d", path, rc);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), path) && tk_contains(tk_errmsg(ctx), what),
              "'%s' lacks '%s'", tk_errmsg(ctx), what);
    tk_ctx_free(ctx);
}

static void test_bad_files(void)
{
    size_t n;
    unsigned char *png = slurp(fixture("rgb.png"), &n);
    if (png) {
        check_bad(write_bytes("cut.png", png, n / 2), "truncated PNG");
        check_bad(write_bytes("header_only.png", png, 30), "truncated PNG");
        png[n / 2] ^= 0x55; /* inside IDAT: the chunk CRC no longer matches */
        check_bad(write_bytes("flipped.png", png, n), "corrupt PNG");
        free(png);
    }
    unsigned char *jpg = slurp(fixture("rgb.jpg"), &n);
    if (jpg) {
        check_bad(write_bytes("cut.jpg", jpg, n * 2 / 3), "truncated JPEG");
        check_bad(write_bytes("cut_header.jpg", jpg, 40), "JPEG");
        /* The first Huffman table's code counts, garbled: more codes than the table holds. */
        size_t k = 2;
        while (k + 21 < n && !(jpg[k] == 0xFF && jpg[k + 1] == 0xC4))
            k++;
        CHECK(k + 21 < n);
        memset(jpg + k + 5, 0xFF, 16);
        check_bad(write_bytes("garbage.jpg", jpg, n), "corrupt JPEG");
        free(jpg);
    }
    check_bad(write_bytes("text.png", (const unsigned char *)"hello", 5), "not a PNG or JPEG");
    check_bad(write_bytes("empty.jpg", (const unsigned char *)"", 0), "empty");
    check_bad(check_path(dir, "missing.png"), "cannot open");

    tk_ctx *ctx = tk_ctx_new();
    float out[64];
    CHECK(tk_image_read(fixture("rgb.png"), 2, 4, 4, out, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "channels must be 1 or 3"));
    CHECK(tk_image_read(fixture("rgb.png"), 1, 0, 4, out, ctx) == TK_ERR_INPUT);
    tk_ctx_free(ctx);
}

static void copy_to(const char *from, const char *to)
{
    size_t n;
    unsigned char *b = slurp(fixture(from), &n);
    if (b)
        write_bytes(to, b, n);
    free(b);
}

static void test_folder(void)
{
    /* root/ b/ {z.png, sub/a.jpg, sub/deep/d.png, sub-x/q.png, notes.txt}  a/ {2.PNG, 10.jpg} */
    const char *root = check_path(dir, "root");
    mkdir(root, 0755);
    mkdir(check_path(dir, "root/b"), 0755);
    mkdir(check_path(dir, "root/b/sub"), 0755);
    mkdir(check_path(dir, "root/b/sub-x"), 0755);
    mkdir(check_path(dir, "root/a"), 0755);
    copy_to("rgb.png", "root/b/z.png");
    copy_to("rgb.jpg", "root/b/sub/a.jpg");
    copy_to("grey.png", "root/b/sub-x/q.png");
    mkdir(check_path(dir, "root/b/sub/deep"), 0755);
    copy_to("bits.png", "root/b/sub/deep/d.png");
    write_bytes("root/b/notes.txt", (const unsigned char *)"x", 1);
    copy_to("palette.png", "root/a/2.PNG");
    copy_to("progressive.jpg", "root/a/10.jpg");

    tk_ctx *ctx = tk_ctx_new();
    tk_dataset *ds = NULL;
    tk_images_opts o = {.root = root, .channels = 3, .height = 6, .width = 5};
    CHECK_MSG(tk_dataset_images(&o, &ds, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    if (ds) {
        CHECK(tk_dataset_len(ds) == 6 && tk_dataset_num_classes(ds) == 2);
        CHECK(strcmp(tk_dataset_class_name(ds, 0), "a") == 0);
        CHECK(strcmp(tk_dataset_class_name(ds, 1), "b") == 0);
        tk_shape s = tk_dataset_sample_shape(ds);
        CHECK(s.ndim == 3 && s.d[0] == 3 && s.d[1] == 6 && s.d[2] == 5);
        /* sorted(os.walk()): b < b/sub < b/sub-x < b/sub/deep ('-' sorts before '/'). */
        const char *order[] = {"root/a/10.jpg", "root/a/2.PNG", "root/b/z.png",
                               "root/b/sub/a.jpg", "root/b/sub-x/q.png",
                               "root/b/sub/deep/d.png"};
        const float labels[] = {0, 0, 1, 1, 1, 1};
        char where[256];
        for (int i = 0; i < 6; i++) {
            tk_dataset_where(ds, i, where, sizeof where);
            CHECK_MSG(strcmp(where, order[i]) == 0, "sample %d is %s", i, where);
            CHECK(tk_dataset_label(ds, i, 0) == labels[i]);
        }
        /* Sample 2's bytes are tk_image_read's of the same file. */
        float want[3 * 6 * 5];
        CHECK(tk_image_read(check_path(dir, "root/b/z.png"), 3, 6, 5, want, ctx) == TK_OK);
        int bad = 0;
        for (int k = 0; k < 90; k++)
            bad += ds->x8[2 * 90 + k] != want[k];
        CHECK(bad == 0);
        tk_dataset_free(ds);
    }

    /* No size: the images differ, so the second one is named. */
    o.height = o.width = 0;
    CHECK(tk_dataset_images(&o, &ds, ctx) == TK_ERR_INPUT && !ds);
    CHECK(tk_contains(tk_errmsg(ctx), "root/a/2.PNG: image is 9 x 14") &&
          tk_contains(tk_errmsg(ctx), "size = {H, W}"));

    o.height = o.width = 4;
    copy_to("rgb.png", "root/b/sub/broken.jpg");
    FILE *f = fopen(check_path(dir, "root/b/sub/broken.jpg"), "r+b");
    fseek(f, 300, SEEK_SET);
    fputc(0, f);
    fclose(f);
    CHECK(tk_dataset_images(&o, &ds, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "root/b/sub/broken.jpg: corrupt PNG"));
    remove(check_path(dir, "root/b/sub/broken.jpg"));

    write_bytes("root/a/x.bmp", (const unsigned char *)"BM", 2);
    CHECK(tk_dataset_images(&o, &ds, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "root/a/x.bmp: only PNG and JPEG"));
    remove(check_path(dir, "root/a/x.bmp"));

    mkdir(check_path(dir, "root/c"), 0755);
    CHECK(tk_dataset_images(&o, &ds, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "class folder 'c' holds no"));
    rmdir(check_path(dir, "root/c"));

    o.root = check_path(dir, "root/b/z.png");
    CHECK(tk_dataset_images(&o, &ds, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "not a folder"));
    o.root = check_path(dir, "root/a");
    CHECK(tk_dataset_images(&o, &ds, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "no class folders"));
    tk_ctx_free(ctx);
}

static void write_text(const char *name, const char *text)
{
    write_bytes(name, (const unsigned char *)text, strlen(text));
}

/* The list form over the files test_folder wrote (root/...). */
static void test_list(void)
{
    tk_ctx *ctx = tk_ctx_new();
    tk_dataset *ds = NULL;
    write_text("list.csv", "label,path\nzebra,root/b/z.png\nant,root/a/2.PNG\n"
                           "zebra,\"root/a/10.jpg\"\n");
    tk_images_opts o = {.list = check_path(dir, "list.csv"), .channels = 1, .height = 4,
                        .width = 4, .path_column = {"path", 0}, .label = {"label", 0},
                        .header = true};
    CHECK_MSG(tk_dataset_images(&o, &ds, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    if (ds) {
        CHECK(tk_dataset_len(ds) == 3 && tk_dataset_num_classes(ds) == 2);
        CHECK(strcmp(tk_dataset_class_name(ds, 0), "ant") == 0);
        CHECK(tk_dataset_label(ds, 0, 0) == 1 && tk_dataset_label(ds, 1, 0) == 0 &&
              tk_dataset_label(ds, 2, 0) == 1);
        char where[128];
        CHECK(strcmp(tk_dataset_where(ds, 1, where, sizeof where), "list.csv row 3") == 0);
        float want[16];
        CHECK(tk_image_read(check_path(dir, "root/a/2.PNG"), 1, 4, 4, want, ctx) == TK_OK);
        int bad = 0;
        for (int k = 0; k < 16; k++)
            bad += ds->x8[16 + k] != want[k];
        CHECK(bad == 0);
        tk_dataset_free(ds);
    }
    /* No header, columns by number, integer labels, paths under root. */
    write_text("ids.csv", "b/z.png,4\na/2.PNG,0\n");
    tk_images_opts n = {.list = check_path(dir, "ids.csv"), .root = check_path(dir, "root"),
                        .channels = 3, .height = 5, .width = 5, .path_column = {NULL, 1},
                        .label = {NULL, 2}};
    CHECK_MSG(tk_dataset_images(&n, &ds, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    if (ds) {
        CHECK(tk_dataset_num_classes(ds) == 5 && !tk_dataset_class_name(ds, 0));
        CHECK(tk_dataset_label(ds, 0, 0) == 4 && tk_dataset_label(ds, 1, 0) == 0);
        tk_dataset_free(ds);
    }
    write_text("short.csv", "path,label\nroot/b/z.png,1\nroot/a/2.PNG\n");
    o.list = check_path(dir, "short.csv");
    CHECK(tk_dataset_images(&o, &ds, ctx) == TK_ERR_INPUT);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), "short.csv row 3: 1 fields"), "%s", tk_errmsg(ctx));
    write_text("gone.csv", "path,label\nroot/b/nothere.png,1\n");
    o.list = check_path(dir, "gone.csv");
    CHECK(tk_dataset_images(&o, &ds, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "cannot open") &&
          tk_contains(tk_errmsg(ctx), "root/b/nothere.png"));
    o.path_column = (tk_colref){"file", 0};
    o.list = check_path(dir, "list.csv");
    CHECK(tk_dataset_images(&o, &ds, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "list.csv: no column 'file' in the header"));
    write_text("quote.csv", "path,label\n\"root/b/z.png,1\n");
    o.path_column = (tk_colref){"path", 0};
    o.list = check_path(dir, "quote.csv");
    CHECK(tk_dataset_images(&o, &ds, ctx) == TK_ERR_INPUT);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), "quote.csv row"), "%s", tk_errmsg(ctx));
    tk_ctx_free(ctx);
}

int main(void)
{
    dir = check_tmpdir("image");
    test_against_torchvision();
    test_bad_files();
    test_folder();
    test_list();
    return check_summary();
}
