/* image_folder.c - tk_dataset_images: a folder of class folders of PNG/JPEG files, in
 * torchvision's ImageFolder order, decoded at load into a uint8 (C, H, W) dataset.
 *
 * Classes are the sub-folders of the root, sorted by name (byte order, which is Python's
 * code-point order for UTF-8). Inside a class, every folder below it is visited in sorted
 * path order (like sorted(os.walk(...))) and its files in sorted name order. Files ending in
 * .png/.jpg/.jpeg (any case) are samples; the other extensions ImageFolder would take (.bmp,
 * .ppm, .tif, ...) are an error, since tkrun cannot decode them and skipping them would
 * silently change the dataset; anything else is ignored, as ImageFolder does.
 * tk_dataset_images hands a list file (o->list) to image_list.c; both decode through
 * tk_images_decode. Not here: decoding itself (image.c).
 */
#include "dataset.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_DEPTH 32

typedef struct {
    char **s;
    size_t n, cap;
} strlist;

static bool push(strlist *l, char *s)
{
    if (!s)
        return false;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **p = tk_realloc(l->s, l->cap * sizeof *p, cap * sizeof *p);
        if (!p) {
            tk_free(s);
            return false;
        }
        l->s = p;
        l->cap = cap;
    }
    l->s[l->n++] = s;
    return true;
}

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        tk_free(l->s[i]);
    tk_free(l->s);
    *l = (strlist){0};
}

static int by_bytes(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* qsort wants a valid pointer even for no elements. */
static void sort(strlist *l)
{
    if (l->n > 1)
        qsort(l->s, l->n, sizeof *l->s, by_bytes);
}

static char *join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = tk_malloc(na + nb + 2);
    if (s) {
        memcpy(s, a, na);
        s[na] = '/';
        memcpy(s + na + 1, b, nb + 1);
    }
    return s;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool ends_with(const char *name, const char *ext)
{
    size_t n = strlen(name), e = strlen(ext);
    return n > e && strcasecmp(name + n - e, ext) == 0;
}

/* 1: a sample, 0: ignored, -1: an image format ImageFolder takes but tkrun cannot read. */
static int file_kind(const char *name)
{
    static const char *const ok[] = {".png", ".jpg", ".jpeg"};
    static const char *const other[] = {".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (ends_with(name, ok[i]))
            return 1;
    for (size_t i = 0; i < sizeof other / sizeof *other; i++)
        if (ends_with(name, other[i]))
            return -1;
    return 0;
}

/* Entries of `dir` (not . and ..): sub-folders into dirs, other names into files. */
static tk_status list_dir(const char *dir, strlist *dirs, strlist *files, tk_ctx *ctx)
{
    errno = 0;
    DIR *d = opendir(dir);
    if (!d)
        return tk_fail(ctx, TK_ERR_INPUT, "cannot open folder '%s': %s", dir, strerror(errno));
    struct dirent *e;
    tk_status st = TK_OK;
    while (!st && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *full = join(dir, e->d_name);
        bool ok = full != NULL;
        if (ok && is_dir(full)) {
            ok = push(dirs, full);
        } else if (ok) {
            tk_free(full);
            ok = push(files, tk_strdup(e->d_name));
        }
        if (!ok)
            st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory listing '%s'", dir);
    }
    closedir(d);
    return st;
}

/* Every folder at or below `dir` (followed through symlinks, like os.walk(followlinks=True)). */
static tk_status walk(const char *dir, int depth, strlist *out, tk_ctx *ctx)
{
    if (depth > MAX_DEPTH)
        return tk_fail(ctx, TK_ERR_INPUT, "'%s': folders nested more than %d deep (a symlink "
                       "loop?)", dir, MAX_DEPTH);
    if (!push(out, tk_strdup(dir)))
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory listing '%s'", dir);
    strlist dirs = {0}, files = {0};
    tk_status st = list_dir(dir, &dirs, &files, ctx);
    for (size_t i = 0; !st && i < dirs.n; i++)
        st = walk(dirs.s[i], depth + 1, out, ctx);
    strlist_free(&dirs);
    strlist_free(&files);
    return st;
}

/* The samples of one class, in ImageFolder order, appended to paths. */
static tk_status class_files(const char *class_dir, strlist *paths, tk_ctx *ctx)
{
    strlist all = {0};
    tk_status st = walk(class_dir, 0, &all, ctx);
    if (!st)
        sort(&all);
    for (size_t i = 0; !st && i < all.n; i++) {
        strlist dirs = {0}, files = {0};
        st = list_dir(all.s[i], &dirs, &files, ctx);
        if (!st)
            sort(&files);
        for (size_t k = 0; !st && k < files.n; k++) {
            int kind = file_kind(files.s[k]);
            if (kind < 0)
                st = tk_fail(ctx, TK_ERR_INPUT, "%s/%s: only PNG and JPEG images can be read "
                             "(convert it, or move it out of the folder)", all.s[i],
                             files.s[k]);
            else if (kind > 0 && !push(paths, join(all.s[i], files.s[k])))
                st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory listing '%s'", all.s[i]);
        }
        strlist_free(&dirs);
        strlist_free(&files);
    }
    strlist_free(&all);
    return st;
}

/* Classes and files: fills ds->class_names/n_classes, paths and each path's class. */
static tk_status scan(const char *root, tk_dataset *ds, strlist *paths, int **label,
                      tk_ctx *ctx)
{
    strlist dirs = {0}, files = {0};
    tk_status st = list_dir(root, &dirs, &files, ctx);
    strlist_free(&files);
    if (!st && dirs.n == 0)
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: no class folders in it (data.images wants one "
                     "folder per class)", root);
    if (!st && dirs.n > 100000)
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: %zu class folders (at most 100000)", root, dirs.n);
    if (st) {
        strlist_free(&dirs);
        return st;
    }
    sort(&dirs);
    ds->n_classes = (int)dirs.n;
    if (!(ds->class_names = tk_calloc(dirs.n, sizeof(char *))))
        st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    for (size_t c = 0; !st && c < dirs.n; c++) {
        ds->class_names[c] = tk_strdup(tk_data_basename(dirs.s[c]));
        size_t before = paths->n;
        st = ds->class_names[c] ? class_files(dirs.s[c], paths, ctx)
                                : tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
        if (!st && paths->n == before)
            st = tk_fail(ctx, TK_ERR_INPUT, "%s: class folder '%s' holds no .png/.jpg/.jpeg "
                         "file", root, ds->class_names[c]);
        int *lb = st ? NULL : tk_realloc(*label, before * sizeof(int), paths->n * sizeof(int));
        if (!st && !lb)
            st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
        for (size_t i = before; !st && i < paths->n; i++)
            (*label = lb)[i] = (int)c;
    }
    strlist_free(&dirs);
    return st;
}

tk_status tk_images_decode(tk_dataset *ds, const tk_images_opts *o, char *const *paths,
                           bool keep, tk_ctx *ctx)
{
    int h = o->height, w = o->width;
    for (int64_t i = 0; i < ds->n; i++) {
        unsigned char *px;
        int ih, iw;
        tk_status st = tk_image_load(paths[i], o->channels, o->height, o->width, &px, &ih,
                                     &iw, ctx);
        if (st)
            return st;
        if (i == 0) {
            h = ih;
            w = iw;
            ds->nfeat = (int64_t)o->channels * h * w;
            ds->shape = (tk_shape){3, {o->channels, h, w}};
            if (keep && !(ds->x8 = tk_malloc((size_t)ds->n * (size_t)ds->nfeat))) {
                tk_free(px);
                return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory for %lld images",
                               ds->name, (long long)ds->n);
            }
        } else if (ih != h || iw != w) {
            tk_free(px);
            return tk_fail(ctx, TK_ERR_INPUT, "%s: image is %d x %d but %s is %d x %d (set "
                           "size = {H, W} to resize them all)", paths[i], ih, iw, paths[0], h,
                           w);
        }
        if (keep)
            memcpy(ds->x8 + i * ds->nfeat, px, (size_t)ds->nfeat);
        tk_free(px);
    }
    return TK_OK;
}

tk_status tk_dataset_images(const tk_images_opts *o, tk_dataset **out, tk_ctx *ctx)
{
    *out = NULL;
    bool list = o && o->list && *o->list;
    if (!o || (!list && (!o->root || !*o->root)))
        return tk_fail(ctx, TK_ERR_INPUT, "images: no root folder or list file given");
    if (o->channels != 1 && o->channels != 3)
        return tk_fail(ctx, TK_ERR_INPUT, "images: channels must be 1 or 3 (got %d)",
                       o->channels);
    if (o->height < 0 || o->width < 0 || (o->height == 0) != (o->width == 0))
        return tk_fail(ctx, TK_ERR_INPUT, "images: size must be two positive numbers (got "
                       "%d x %d)", o->height, o->width);
    tk_dataset *ds = tk_dataset_alloc(list ? o->list : o->root, list ? "row" : "image");
    if (!ds)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    if (list) {
        tk_status st = tk_image_list(o, ds, ctx);
        if (st) {
            tk_dataset_free(ds);
            return st;
        }
        *out = ds;
        return TK_OK;
    }
    /* Messages and where() show "train/cat/1.png", so drop trailing slashes from the root. */
    for (size_t k = strlen(ds->path); k > 1 && ds->path[k - 1] == '/'; k--)
        ds->path[k - 1] = '\0';
    ds->name = tk_data_basename(ds->path);
    if (!is_dir(ds->path)) {
        tk_status st = tk_fail(ctx, TK_ERR_INPUT, "%s: not a folder", o->root);
        tk_dataset_free(ds);
        return st;
    }
    strlist paths = {0};
    int *label = NULL;
    tk_status st = scan(ds->path, ds, &paths, &label, ctx);
    if (!st) {
        ds->n = (int64_t)paths.n;
        ds->kind = TK_LABEL_CLASS;
        ds->label_width = 1;
        if (!(ds->y = tk_malloc(paths.n * sizeof(float))))
            st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
        for (size_t i = 0; !st && i < paths.n; i++)
            ds->y[i] = (float)label[i];
    }
    if (!st)
        st = o->stream ? tk_images_stream(ds, o, paths.s, ctx)
                       : tk_images_decode(ds, o, paths.s, true, ctx);
    tk_free(label);
    if (st) {
        strlist_free(&paths);
        tk_dataset_free(ds);
        return st;
    }
    /* Keep each sample's path relative to the root, for tk_dataset_where. */
    size_t skip = strlen(ds->path) + 1;
    for (size_t i = 0; i < paths.n; i++)
        memmove(paths.s[i], paths.s[i] + skip, strlen(paths.s[i] + skip) + 1);
    ds->files = paths.s;
    *out = ds;
    return TK_OK;
}
