/* Sizes and ioctl numbers of the V4L2 structures as the system's <linux/videodev2.h> defines
 * them for the target: a unit test checks the Rust definitions in src/v4l2.rs against these,
 * on every architecture the tests run on (x86_64 here, aarch64 under qemu). */
#include <stddef.h>
#include <linux/videodev2.h>

size_t binoc_v4l2_layout(int what) {
    switch (what) {
    case 0: return sizeof(struct v4l2_capability);
    case 1: return sizeof(struct v4l2_format);
    case 2: return sizeof(struct v4l2_pix_format_mplane);
    case 3: return sizeof(struct v4l2_pix_format);
    case 4: return sizeof(struct v4l2_requestbuffers);
    case 5: return sizeof(struct v4l2_buffer);
    case 6: return sizeof(struct v4l2_plane);
    case 7: return sizeof(struct v4l2_control);
    case 8: return sizeof(struct v4l2_fmtdesc);
    case 9: return offsetof(struct v4l2_buffer, m);
    case 10: return offsetof(struct v4l2_buffer, length);
    case 11: return offsetof(struct v4l2_format, fmt);
    case 12: return offsetof(struct v4l2_pix_format_mplane, num_planes);
    case 13: return sizeof(struct v4l2_streamparm);
    case 14: return sizeof(struct v4l2_frmsizeenum);
    case 15: return sizeof(struct v4l2_frmivalenum);
    case 20: return VIDIOC_QUERYCAP;
    case 21: return VIDIOC_S_FMT;
    case 22: return VIDIOC_REQBUFS;
    case 23: return VIDIOC_QUERYBUF;
    case 24: return VIDIOC_QBUF;
    case 25: return VIDIOC_DQBUF;
    case 26: return VIDIOC_STREAMON;
    case 27: return VIDIOC_STREAMOFF;
    case 28: return VIDIOC_S_CTRL;
    case 29: return VIDIOC_ENUM_FMT;
    case 30: return VIDIOC_S_PARM;
    case 31: return VIDIOC_ENUM_FRAMESIZES;
    case 32: return VIDIOC_ENUM_FRAMEINTERVALS;
    default: return 0;
    }
}
