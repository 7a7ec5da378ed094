/* csv_int.h - the CSV reader's sheet (one file being parsed) shared by csv.c, which reads
 * whole files into memory, and csv_stream.c, which indexes a file once and re-reads its
 * shards while training. Private to those two files. */
#ifndef TK_DATA_CSV_INT_H
#define TK_DATA_CSV_INT_H

#include "dataset.h"

#include <csv.h>

typedef struct {
    char *s;
    int64_t line;              /* first occurrence, for errors */
    int col;
} label_str;

/* One CSV file being read: the options that concern it, the row libcsv is assembling,
 * the resolved columns and the values parsed so far. */
typedef struct tk_sheet {
    const char *name;          /* basename, for messages */
    char delim;
    int skip_rows;
    bool header;
    bool want_features, want_labels, regression;
    bool like;                 /* prediction input laid out like a training file: */
    bool exclude_label;        /*  its label columns are skipped, not read */
    int like_cols, like_feat;  /*  its columns per row and feature count */
    const tk_colref *feat_refs, *label_refs;
    int n_feat_refs, n_label_refs;
    tk_ctx *ctx;
    tk_status st;              /* first failure; later callbacks do nothing */

    char *cells;               /* the current row's cells, NUL-terminated, back to back */
    size_t cells_len, cells_cap;
    size_t *cell_off;
    size_t cap_cells;
    int n_cells;
    int64_t line;              /* physical line libcsv has reached */
    int64_t row_line;          /* where the current row started */
    bool in_row, after_cr;
    int64_t records;           /* non-blank rows seen, for skip_rows */

    int ncol;                  /* 0 until the first row after the skipped ones */
    char **names;              /* header names, or NULL */
    int *feat_cols, *label_cols; /* 0-based */
    int nfeat, nlab;

    int64_t n, cap;            /* data rows */
    float *x;                  /* cap * nfeat */
    float *y;                  /* regression: cap * nlab */
    int32_t *label_ids;        /* classes: index into strs */
    int64_t *lines;
    label_str *strs;           /* distinct class label cells */
    size_t cap_strs;
    int n_strs;
    int32_t *hash;             /* open addressing over strs, -1 empty */
    size_t hash_cap;

    /* Streaming (csv_stream.c): rows go to `hook` one at a time instead of into x/y. */
    const struct tk_csv_hook *hook;
    bool frozen;               /* class labels only looked up in strs (a shard re-read) */
    bool done;                 /* enough rows: callbacks ignore the rest of the input */
    size_t max_field, max_cells; /* longest field and row (cells_len) seen */
    int64_t max_rows;          /* > 0: done after this many data rows */
} sheet;

/* Where a streamed sheet sends each data row: its features, its regression targets or
 * its class label's index into strs, and its line. A failure status ends the read. */
typedef struct tk_csv_hook {
    tk_status (*row)(sheet *sh, const float *x, const float *y, int32_t label, int64_t line);
    bool (*want)(sheet *sh);   /* NULL or false: row sh->n is counted but not parsed */
    void *ud;
} tk_csv_hook;

/* csv.c's parser plumbing, in the order a read uses it. */
/* reserve > 0: the field buffer is allocated now, for fields up to that length. */
void tk_csv_parser_init(sheet *sh, struct csv_parser *p, size_t reserve);
void tk_csv_on_field(void *s, size_t len, void *data);
void tk_csv_on_row_end(int c, void *data);
tk_status tk_csv_parse_failure(sheet *sh, struct csv_parser *p, const char *what);
/* The distinct label cells to class ids: val[i] for strs[i]; ds gets n_classes and, for
 * names, class_names (moved out of the sheet). */
tk_status tk_csv_class_values(sheet *sh, tk_dataset *ds, double *val);
void tk_csv_free_sheet(sheet *sh);

#endif
