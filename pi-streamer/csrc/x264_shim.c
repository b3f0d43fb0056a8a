/* A narrow C shim over libx264, compiled against the system's x264.h by build.rs, so the
 * Rust side never depends on the layout of x264_param_t / x264_picture_t (which change
 * between x264 builds). Every function returns 0 on success, negative on error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <x264.h>

struct binoc_x264_cfg {
    int width, height;
    int fps_num, fps_den;
    int bitrate_kbps;
    int keyint;          /* 0: no periodic IDR */
    int threads;         /* slice threads; 0 = x264 decides */
    int qp_min, qp_max;
    int slice_max_size;  /* bytes; 0 = no limit */
    int repeat_headers;  /* SPS/PPS in front of every IDR */
    const char *preset;  /* e.g. "ultrafast" */
    int slices;          /* > 1: that many row slices, each handed over as it is finished */
    int intra_refresh;   /* periodic intra refresh instead of periodic IDRs */
};

/* Where finished slices go, in picture order: one call per slice with the frame's header NALs
 * (SPS/PPS/SEI) in front of its first slice. `idr`: the slice belongs to an IDR picture;
 * `recovery` > 0: the picture starts an intra-refresh sweep whose picture `recovery` frames
 * later is exact again (its recovery point SEI's recovery_frame_cnt). */
typedef void (*binoc_slice_sink)(void *ctx, const uint8_t *data, int len, int index, int count,
                                 int idr, int recovery);

/* A slice finished out of order (sliced threads), kept until the slices before it are out. */
struct held_slice {
    int first_mb, last_mb, idr;
    uint8_t *buf;
    int len, cap;
};

struct binoc_x264 {
    x264_t *h;
    x264_param_t p;
    int64_t pts;
    /* Sliced output (slices > 1): x264's nalu_process callback, serialised by `mu` because
     * sliced threads call it concurrently and out of order. */
    int slice_count, mb_total;
    pthread_mutex_t mu;
    binoc_slice_sink sink;
    void *ctx;
    uint8_t *prefix;      /* header NALs waiting for the frame's first slice */
    int prefix_len, prefix_cap;
    struct held_slice *held;
    int n_held, cap_held;
    uint8_t *unit;        /* prefix + slice, handed to the sink */
    int unit_cap;
    int next_mb, next_index, failed;
    int recovery;         /* this picture's recovery_frame_cnt (0: not a sweep start) */
    int recovery_frames;  /* what x264 writes in a sweep start's recovery point SEI */
};

/* x264's recovery_frame_cnt for a sweep start (set.c: min(mb_width - 1, keyint) + bframes - 1;
 * binoc has no B-frames), at least 1. */
static int recovery_frames(const x264_param_t *p) {
    int mb_w = (p->i_width + 15) / 16;
    int k = p->i_keyint_max < mb_w - 1 ? p->i_keyint_max : mb_w - 1;
    return k - 1 > 1 ? k - 1 : 1;
}

static int reserve(uint8_t **buf, int *cap, int need) {
    if (need <= *cap) return 0;
    int n = *cap > 0 ? *cap : 4096;
    while (n < need) n *= 2;
    uint8_t *b = realloc(*buf, n);
    if (!b) return -1;
    *buf = b;
    *cap = n;
    return 0;
}

/* Hands over every held slice that continues the picture where the last one ended. */
static void flush_in_order(struct binoc_x264 *e) {
    int progress = 1;
    while (progress && !e->failed) {
        progress = 0;
        for (int i = 0; i < e->n_held; i++) {
            struct held_slice *s = &e->held[i];
            if (s->first_mb != e->next_mb) continue;
            int len = e->prefix_len + s->len;
            if (reserve(&e->unit, &e->unit_cap, len) < 0) { e->failed = 1; return; }
            memcpy(e->unit, e->prefix, e->prefix_len);
            memcpy(e->unit + e->prefix_len, s->buf, s->len);
            e->prefix_len = 0;
            e->next_mb = s->last_mb + 1;
            int index = e->next_index++;
            if (index >= e->slice_count) { e->failed = 1; return; }
            e->sink(e->ctx, e->unit, len, index, e->slice_count, s->idr, e->recovery);
            /* The slot is free again: move the last one into it. */
            struct held_slice tmp = *s;
            *s = e->held[e->n_held - 1];
            e->held[e->n_held - 1] = tmp;
            e->n_held--;
            progress = 1;
            break;
        }
    }
}

/* x264's per-NAL callback (x264.h: "must be re-entrant"; NALs unescaped, not in order). */
static void nal_cb(x264_t *h, x264_nal_t *nal, void *opaque) {
    struct binoc_x264 *e = opaque;
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    int room = nal->i_payload * 3 / 2 + 5 + 64; /* x264.h: what x264_nal_encode may write */
    if (nal->i_type == NAL_SLICE || nal->i_type == NAL_SLICE_IDR) {
        if (e->n_held == e->cap_held) {
            int n = e->cap_held ? e->cap_held * 2 : 8;
            struct held_slice *hs = realloc(e->held, n * sizeof *hs);
            if (!hs) { e->failed = 1; goto out; }
            memset(hs + e->cap_held, 0, (n - e->cap_held) * sizeof *hs);
            e->held = hs;
            e->cap_held = n;
        }
        struct held_slice *s = &e->held[e->n_held];
        if (reserve(&s->buf, &s->cap, room) < 0) { e->failed = 1; goto out; }
        x264_nal_encode(h, s->buf, nal);
        s->len = nal->i_payload;
        s->first_mb = nal->i_first_mb;
        s->last_mb = nal->i_last_mb;
        s->idr = nal->i_type == NAL_SLICE_IDR;
        e->n_held++;
        flush_in_order(e);
    } else {
        /* Unescaped RBSP at this point: an SEI's first byte is its payload type; 6 is the
         * recovery point x264 writes in front of a sweep's first picture. */
        if (nal->i_type == NAL_SEI && nal->i_payload > 0 && nal->p_payload[0] == 6)
            e->recovery = e->recovery_frames;
        if (reserve(&e->prefix, &e->prefix_cap, e->prefix_len + room) < 0) { e->failed = 1; goto out; }
        x264_nal_encode(h, e->prefix + e->prefix_len, nal);
        e->prefix_len += nal->i_payload;
    }
out:
    pthread_mutex_unlock(&e->mu);
}

static void set_rate(x264_param_t *p, int kbps, int fps_num, int fps_den) {
    p->rc.i_rc_method = X264_RC_ABR;
    p->rc.i_bitrate = kbps;
    p->rc.i_vbv_max_bitrate = kbps;
    /* A VBV buffer of about one frame keeps every frame near its share of the rate: no
     * frame can take many frame-times to send. */
    int per_frame = (int)((int64_t)kbps * fps_den / (fps_num > 0 ? fps_num : 60));
    p->rc.i_vbv_buffer_size = per_frame > 1 ? per_frame : 1;
}

int binoc_x264_open(const struct binoc_x264_cfg *c, struct binoc_x264 **out, char *err, int errlen) {
    struct binoc_x264 *e = calloc(1, sizeof *e);
    if (!e) { snprintf(err, errlen, "out of memory"); return -1; }
    if (x264_param_default_preset(&e->p, c->preset, "zerolatency") < 0) {
        snprintf(err, errlen, "unknown x264 preset '%s'", c->preset);
        free(e);
        return -2;
    }
    x264_param_t *p = &e->p;
    p->i_log_level = X264_LOG_ERROR;
    p->i_width = c->width;
    p->i_height = c->height;
    p->i_csp = X264_CSP_I420;
    p->i_fps_num = c->fps_num;
    p->i_fps_den = c->fps_den;
    p->i_timebase_num = c->fps_den;
    p->i_timebase_den = c->fps_num;
    p->b_vfr_input = 0;
    p->i_bframe = 0;
    p->i_frame_reference = 1;
    p->b_annexb = 1;
    p->b_repeat_headers = c->repeat_headers;
    p->i_keyint_max = c->keyint > 0 ? c->keyint : X264_KEYINT_MAX_INFINITE;
    /* Intra refresh: a column of intra macroblocks sweeps the picture every keyint frames
     * instead of an IDR (no frame several times its neighbours' size); an IDR still comes
     * when one is forced. */
    p->b_intra_refresh = c->intra_refresh ? 1 : 0;
    p->i_keyint_min = 1;
    p->i_scenecut_threshold = 0;
    p->i_threads = c->threads;
    p->b_sliced_threads = 1;
    p->i_slice_max_size = c->slice_max_size;
    if (c->slices > 1) {
        /* One thread writes the slices one after another, so the first is out while the
         * rest are encoded; with sliced threads x264 cuts one slice per thread instead. */
        if (c->threads > 1) p->i_slice_count = c->threads;
        else p->i_slice_count = c->slices;
        p->i_slice_max_size = 0;
        p->nalu_process = nal_cb;
    }
    p->rc.i_qp_min = c->qp_min;
    p->rc.i_qp_max = c->qp_max;
    p->rc.i_lookahead = 0;
    p->rc.b_mb_tree = 0;
    set_rate(p, c->bitrate_kbps, c->fps_num, c->fps_den);
    /* Constrained baseline whatever the preset: every H.264 decoder binoc feeds (openh264 on
     * desktops, MediaCodec, browsers' WebRTC) decodes it, and it has no B-frames. */
    if (x264_param_apply_profile(p, "baseline") < 0) {
        snprintf(err, errlen, "x264 refused the baseline profile");
        free(e);
        return -4;
    }
    e->h = x264_encoder_open(p);
    if (!e->h) {
        snprintf(err, errlen, "x264_encoder_open refused the parameters (%dx%d)", c->width, c->height);
        free(e);
        return -3;
    }
    if (c->slices > 1) {
        x264_param_t got;
        x264_encoder_parameters(e->h, &got);
        e->slice_count = got.i_slice_count > 0 ? got.i_slice_count : 1;
        e->mb_total = ((c->width + 15) / 16) * ((c->height + 15) / 16);
        e->recovery_frames = recovery_frames(&got);
        pthread_mutex_init(&e->mu, NULL);
    }
    *out = e;
    return 0;
}

/* The input picture of one encode: the caller's I420 planes, IDR if forced, the next pts. */
static void input_picture(struct binoc_x264 *e, x264_picture_t *in, const uint8_t *y,
                          const uint8_t *u, const uint8_t *v, int stride_y, int stride_c,
                          int force_idr) {
    x264_picture_init(in);
    in->img.i_csp = X264_CSP_I420;
    in->img.i_plane = 3;
    in->img.plane[0] = (uint8_t *)y;
    in->img.plane[1] = (uint8_t *)u;
    in->img.plane[2] = (uint8_t *)v;
    in->img.i_stride[0] = stride_y;
    in->img.i_stride[1] = stride_c;
    in->img.i_stride[2] = stride_c;
    in->i_type = force_idr ? X264_TYPE_IDR : X264_TYPE_AUTO;
    in->i_pts = e->pts++;
}

/* How many slices each frame has in sliced mode (0: whole frames from binoc_x264_encode). */
int binoc_x264_slice_count(const struct binoc_x264 *e) { return e->slice_count; }

/* Encodes one picture in sliced mode: each slice goes to `sink` as soon as it (and every
 * slice above it) is finished, before this returns. *keyframe: the picture is an IDR;
 * *refresh: it starts an intra-refresh sweep. */
int binoc_x264_encode_sliced(struct binoc_x264 *e, const uint8_t *y, const uint8_t *u,
                             const uint8_t *v, int stride_y, int stride_c, int force_idr,
                             binoc_slice_sink sink, void *ctx, int *keyframe, int *refresh) {
    if (e->slice_count < 1 || !sink) return -2;
    x264_picture_t in, out;
    input_picture(e, &in, y, u, v, stride_y, stride_c, force_idr);
    in.opaque = e;
    pthread_mutex_lock(&e->mu);
    e->sink = sink;
    e->ctx = ctx;
    e->prefix_len = 0;
    e->n_held = 0;
    e->next_mb = 0;
    e->next_index = 0;
    e->failed = 0;
    e->recovery = 0;
    pthread_mutex_unlock(&e->mu);
    x264_nal_t *nals = NULL;
    int n = 0;
    int size = x264_encoder_encode(e->h, &nals, &n, &in, &out);
    pthread_mutex_lock(&e->mu);
    int failed = e->failed;
    int complete = e->next_mb == e->mb_total && e->next_index == e->slice_count;
    e->sink = NULL;
    e->ctx = NULL;
    pthread_mutex_unlock(&e->mu);
    if (size < 0 || failed) return -1;
    if (size == 0) { *keyframe = 0; *refresh = 0; return 0; }
    if (!complete) return -3;
    *keyframe = out.i_type == X264_TYPE_IDR;
    *refresh = out.b_keyframe && out.i_type != X264_TYPE_IDR;
    if (*refresh && !e->recovery) return -4; /* a sweep start without its recovery point */
    return 0;
}

/* Encodes one I420 picture. On success, *data and *len point into x264's own buffer (valid until
 * the next call) and *keyframe tells whether it is an IDR. */
int binoc_x264_encode(struct binoc_x264 *e, const uint8_t *y, const uint8_t *u, const uint8_t *v,
                      int stride_y, int stride_c, int force_idr,
                      const uint8_t **data, int *len, int *keyframe, int *recovery) {
    x264_picture_t in, out;
    input_picture(e, &in, y, u, v, stride_y, stride_c, force_idr);
    x264_nal_t *nals = NULL;
    int n = 0;
    int size = x264_encoder_encode(e->h, &nals, &n, &in, &out);
    if (size < 0) return -1;
    *recovery = 0;
    if (size == 0 || n == 0) { *data = NULL; *len = 0; *keyframe = 0; return 0; }
    /* x264 guarantees the payloads of one call are contiguous in memory. */
    *data = nals[0].p_payload;
    *len = size;
    /* Not b_keyframe: with intra refresh, a sweep's first P-frame has it set too. */
    *keyframe = out.i_type == X264_TYPE_IDR;
    if (out.b_keyframe && !*keyframe) {
        x264_param_t got;
        x264_encoder_parameters(e->h, &got);
        *recovery = recovery_frames(&got);
    }
    return 0;
}

int binoc_x264_set_bitrate(struct binoc_x264 *e, int kbps) {
    set_rate(&e->p, kbps, e->p.i_fps_num, e->p.i_fps_den);
    return x264_encoder_reconfig(e->h, &e->p) < 0 ? -1 : 0;
}

void binoc_x264_close(struct binoc_x264 *e) {
    if (!e) return;
    if (e->h) x264_encoder_close(e->h);
    if (e->slice_count > 0) pthread_mutex_destroy(&e->mu);
    for (int i = 0; i < e->cap_held; i++) free(e->held[i].buf);
    free(e->held);
    free(e->prefix);
    free(e->unit);
    free(e);
}

int binoc_x264_build(void) { return X264_BUILD; }
