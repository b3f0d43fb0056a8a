/* A narrow C shim over libx264, compiled against the system's x264.h by build.rs, so the
 * Rust side never depends on the layout of x264_param_t / x264_picture_t (which change
 * between x264 builds). Every function returns 0 on success, negative on error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
};

struct binoc_x264 {
    x264_t *h;
    x264_param_t p;
    int64_t pts;
};

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
    p->i_keyint_min = 1;
    p->i_scenecut_threshold = 0;
    p->i_threads = c->threads;
    p->b_sliced_threads = 1;
    p->i_slice_max_size = c->slice_max_size;
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
    *out = e;
    return 0;
}

/* Encodes one I420 picture. On success, *data and *len point into x264's own buffer (valid until
 * the next call) and *keyframe tells whether it is an IDR. */
int binoc_x264_encode(struct binoc_x264 *e, const uint8_t *y, const uint8_t *u, const uint8_t *v,
                      int stride_y, int stride_c, int force_idr,
                      const uint8_t **data, int *len, int *keyframe) {
    x264_picture_t in, out;
    x264_picture_init(&in);
    in.img.i_csp = X264_CSP_I420;
    in.img.i_plane = 3;
    in.img.plane[0] = (uint8_t *)y;
    in.img.plane[1] = (uint8_t *)u;
    in.img.plane[2] = (uint8_t *)v;
    in.img.i_stride[0] = stride_y;
    in.img.i_stride[1] = stride_c;
    in.img.i_stride[2] = stride_c;
    in.i_type = force_idr ? X264_TYPE_IDR : X264_TYPE_AUTO;
    in.i_pts = e->pts++;
    x264_nal_t *nals = NULL;
    int n = 0;
    int size = x264_encoder_encode(e->h, &nals, &n, &in, &out);
    if (size < 0) return -1;
    if (size == 0 || n == 0) { *data = NULL; *len = 0; *keyframe = 0; return 0; }
    /* x264 guarantees the payloads of one call are contiguous in memory. */
    *data = nals[0].p_payload;
    *len = size;
    *keyframe = out.b_keyframe;
    return 0;
}

int binoc_x264_set_bitrate(struct binoc_x264 *e, int kbps) {
    set_rate(&e->p, kbps, e->p.i_fps_num, e->p.i_fps_den);
    return x264_encoder_reconfig(e->h, &e->p) < 0 ? -1 : 0;
}

void binoc_x264_close(struct binoc_x264 *e) {
    if (!e) return;
    if (e->h) x264_encoder_close(e->h);
    free(e);
}

int binoc_x264_build(void) { return X264_BUILD; }
