/* binoc's H.264 decode through libavcodec (Debian libavcodec-dev): the decoder GStreamer's
 * avdec_h264 uses. A thin C shim so that Rust sees one small struct and no libavcodec layout.
 *
 * Chunked input (AV_CODEC_FLAG2_CHUNKS): each call may carry one slice of a picture; libavcodec
 * decodes it at once and finishes the picture when its last macroblock row is decoded, so the
 * picture comes out with the slice that completes it. Whole access units work the same way.
 * One thread, low delay: a picture comes out of the call that completes it, never later. */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/frame.h>
#include <libavutil/log.h>
#include <libavutil/pixfmt.h>

struct binoc_avdec {
    AVCodecContext *ctx;
    AVPacket *pkt;
    AVFrame *frame; /* the picture last put out (kept until the next call) */
    AVFrame *next;
    uint8_t *buf; /* the input, copied with libavcodec's zeroed padding after it */
    size_t cap;
};

struct binoc_avdec_picture {
    const uint8_t *plane[3];
    int32_t stride[3];
    int32_t width;
    int32_t height;
    /* 1: libavcodec concealed part of the picture (a lost reference, a bitstream error). */
    int32_t corrupt;
};

/* libavcodec's log lines go to binoc's log (tracing, in Rust) instead of stderr. */
void binoc_avdec_log(int level, const char *line);

static void log_line(void *avcl, int level, const char *fmt, va_list vl) {
    (void)avcl;
    if (level > av_log_get_level()) return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, vl);
    binoc_avdec_log(level, line);
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static void set_log_callback(void) { av_log_set_callback(log_line); }

static void set_err(char *err, size_t len, const char *what, int rc) {
    if (!err || len == 0) return;
    char msg[AV_ERROR_MAX_STRING_SIZE] = {0};
    if (rc) av_strerror(rc, msg, sizeof msg);
    snprintf(err, len, "%s%s%s", what, rc ? ": " : "", msg);
}

void binoc_avdec_free(struct binoc_avdec *d) {
    if (!d) return;
    avcodec_free_context(&d->ctx);
    av_packet_free(&d->pkt);
    av_frame_free(&d->frame);
    av_frame_free(&d->next);
    av_free(d->buf);
    av_free(d);
}

struct binoc_avdec *binoc_avdec_new(char *err, size_t err_len) {
    pthread_once(&log_once, set_log_callback);
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_H264);
    if (!codec) {
        set_err(err, err_len, "this libavcodec has no H.264 decoder", 0);
        return NULL;
    }
    struct binoc_avdec *d = av_mallocz(sizeof *d);
    if (!d) {
        set_err(err, err_len, "out of memory", 0);
        return NULL;
    }
    d->ctx = avcodec_alloc_context3(codec);
    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    d->next = av_frame_alloc();
    if (!d->ctx || !d->pkt || !d->frame || !d->next) {
        set_err(err, err_len, "out of memory", 0);
        binoc_avdec_free(d);
        return NULL;
    }
    d->ctx->thread_count = 1;
    /* No error concealment: with chunked input libavcodec runs it at the end of every chunk,
     * over the rows not yet decoded (3/4, 1/2, 1/4 of a picture in 4 slices: work thrown away
     * when the next slices arrive), and then flags every sliced picture as concealed. binoc
     * hides a picture with a lost slice itself, until an IDR or an intra-refresh sweep has
     * repaired the picture (shared_proto::rules::refresh). */
    d->ctx->error_concealment = 0;
    /* A slice that fails to decode is an error of the call (the decoder thread counts it and
     * waits for a repair), not a picture with stale rows put out as if good. */
    d->ctx->err_recognition |= AV_EF_EXPLODE;
    d->ctx->flags |= AV_CODEC_FLAG_LOW_DELAY | AV_CODEC_FLAG_OUTPUT_CORRUPT;
    d->ctx->flags2 |= AV_CODEC_FLAG2_CHUNKS;
    int rc = avcodec_open2(d->ctx, codec, NULL);
    if (rc < 0) {
        set_err(err, err_len, "avcodec_open2", rc);
        binoc_avdec_free(d);
        return NULL;
    }
    return d;
}

/* Decodes `len` bytes (one slice or a whole access unit). Returns 1 with `out` filled when a
 * picture came out (valid until the next call), 0 when none did, a negative AVERROR on an
 * error (`err` says what). When several pictures come out of one call (a damaged picture
 * finished late by this one), only the newest is put out. */
int binoc_avdec_decode(struct binoc_avdec *d, const uint8_t *data, size_t len,
                       struct binoc_avdec_picture *out, char *err, size_t err_len) {
    if (len == 0) return 0;
    if (len > (size_t)INT32_MAX - AV_INPUT_BUFFER_PADDING_SIZE) {
        set_err(err, err_len, "access unit too long", 0);
        return AVERROR(EINVAL);
    }
    if (d->cap < len + AV_INPUT_BUFFER_PADDING_SIZE) {
        size_t cap = len + AV_INPUT_BUFFER_PADDING_SIZE;
        if (cap < 2 * d->cap) cap = 2 * d->cap;
        uint8_t *buf = av_realloc(d->buf, cap);
        if (!buf) {
            set_err(err, err_len, "out of memory", 0);
            return AVERROR(ENOMEM);
        }
        d->buf = buf;
        d->cap = cap;
    }
    memcpy(d->buf, data, len);
    memset(d->buf + len, 0, AV_INPUT_BUFFER_PADDING_SIZE);
    av_packet_unref(d->pkt);
    d->pkt->data = d->buf;
    d->pkt->size = (int)len;
    int got = 0;
    int rc = avcodec_send_packet(d->ctx, d->pkt);
    if (rc == AVERROR(EAGAIN)) {
        /* Not expected (every call drains the decoder), but never drop a slice: take the
         * pictures waiting, then give the slice again. */
        while (avcodec_receive_frame(d->ctx, d->next) >= 0) {
            AVFrame *t = d->frame;
            d->frame = d->next;
            d->next = t;
            av_frame_unref(d->next);
            got = 1;
        }
        rc = avcodec_send_packet(d->ctx, d->pkt);
    }
    d->pkt->data = NULL;
    d->pkt->size = 0;
    if (rc < 0) {
        set_err(err, err_len, "avcodec_send_packet", rc);
        return rc;
    }
    for (;;) {
        rc = avcodec_receive_frame(d->ctx, d->next);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) break;
        if (rc < 0) {
            set_err(err, err_len, "avcodec_receive_frame", rc);
            return rc;
        }
        AVFrame *t = d->frame;
        d->frame = d->next;
        d->next = t;
        av_frame_unref(d->next);
        got = 1;
    }
    if (!got) return 0;
    const AVFrame *f = d->frame;
    if (f->format != AV_PIX_FMT_YUV420P && f->format != AV_PIX_FMT_YUVJ420P) {
        set_err(err, err_len, "a picture that is not 8-bit 4:2:0", 0);
        return AVERROR(ENOSYS);
    }
    for (int i = 0; i < 3; i++) {
        out->plane[i] = f->data[i];
        out->stride[i] = f->linesize[i];
    }
    out->width = f->width;
    out->height = f->height;
    /* With concealment off, libavcodec's software decoder rarely sets any of these (a failed
     * slice is an error of the call instead, AV_EF_EXPLODE); kept for the decoders that do.
     * Not FF_DECODE_ERROR_DECODE_SLICES: with concealment on and chunked input, it marks every
     * picture that came in more than one chunk. */
    out->corrupt = (f->flags & AV_FRAME_FLAG_CORRUPT)
                   || (f->decode_error_flags & (FF_DECODE_ERROR_INVALID_BITSTREAM
                                                | FF_DECODE_ERROR_MISSING_REFERENCE
                                                | FF_DECODE_ERROR_CONCEALMENT_ACTIVE));
    return 1;
}
