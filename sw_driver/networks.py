"""The deconvolution workloads of the benchmark, as data.

Every transposed-convolution layer of the networks the split-deconvolution
paper (Xu et al., IEEE Trans. Computers 2020, arXiv 1907.01773) evaluates,
plus FCN-8s's upsampling layers, in PyTorch `ConvTranspose2d` terms (see
shared/reference/split-deconvolution.md, "Workloads"). Batch 1, NCHW.

Choices the table leaves open, and how they are made here:

- DCGAN (PyTorch form): the `pytorch/examples` generator, nz=100, ngf=64,
  nc=3: 1x1x100 -> 4x4x512 (K4 s1 p0), then K4 s2 p1 up to 64x64x3.
- DCGAN (TF form): the authors' configuration (their
  `networks_configuration/DCGAN.csv`: FC -> 8x8x256, then three K5 s2
  deconvolutions to 64x64x3). TensorFlow's SAME padding for K5 s2 gives
  exactly 2H outputs, cropping 1 pixel before and 2 after. PyTorch's
  ConvTranspose2d crops p before and p - op after, so 2H needs 2p - op = 3:
  p=2, op=1 (crop 2 before, 1 after). "p=1, op=1" would give 2H+2 outputs.
  p=2, op=1 does the same work on the same shapes as TF SAME, with the crop
  mirrored (the output is TF's shifted by one pixel), which is what a cycle
  and energy benchmark needs.
- SNGAN: the "standard CNN" generator of Miyato et al. (Chainer): z -> FC ->
  4x4x512, three K4 s2 p1 deconvolutions to 32x32x64, and a K3 s1 p1
  deconvolution to 32x32x3 (stride 1: every method runs it as one ordinary
  convolution, so its speed-up is about 1).
- Fast style transfer (Johnson et al.) on a 256x256 image: two K3 s2
  deconvolutions, TF SAME, which in PyTorch is p=1, op=1 (exactly 2H, here
  with the same crop as TF).
- GP-GAN decoder (blending GAN, Wu et al.): 1x1x4000 -> 4x4x512 (K4 s1 p0),
  then K4 s2 p1 up to 64x64x3.
- FCN-8s upsampling (Long et al.), PASCAL VOC, 21 classes, on a 512x512 image
  (VOC images are at most 500x500): score maps of stride 32 (16x16) upsampled
  x2 (upscore2, K4 s2), fused with pool4's scores and upsampled x2 again
  (upscore_pool4, K4 s2), fused with pool3's scores and upsampled x8
  (upscore8, K16 s8) to 512x512. Caffe's FCN uses padding 0 and a Crop layer;
  here the crop is the PyTorch padding that gives exactly 2H / 8H (p=1 / p=4),
  the same work up to the crop offset. K16 exceeds the accelerator's
  kernel_max (7): zero insertion, which convolves with the whole 16x16 kernel,
  cannot run it; split runs it as 64 phases with 2x2 sub-kernels.

`paper_speedup` is the paper's Edge TPU speed-up of split deconvolution over
zero insertion for the whole network (DCGAN 2.87, SNGAN 3.55, FST 2.06,
GP-GAN 3.60). The paper's DCGAN is the TF form; the PyTorch form shows the
same figure for comparison. FCN-8s is not in the paper.
"""

from dataclasses import dataclass, replace

from .layers import ConvTranspose2dParams

__all__ = ["Layer", "Network", "NETWORKS", "PAPER_SPEEDUPS", "network", "scaled_network"]

# The paper's measured Edge TPU speed-ups, split over zero insertion, whole network.
PAPER_SPEEDUPS = {"DCGAN": 2.87, "SNGAN": 3.55, "FST": 2.06, "GP-GAN": 3.60}


@dataclass(frozen=True)
class Layer:
    """One ConvTranspose2d layer: `input` is (C, H, W), the rest PyTorch's arguments."""

    name: str
    input: tuple
    out_channels: int
    kernel: int
    stride: int
    padding: int
    output_padding: int = 0

    @property
    def in_channels(self):
        return self.input[0]

    @property
    def params(self):
        """The layer as a ConvTranspose2dParams."""
        return ConvTranspose2dParams(self.in_channels, self.out_channels, self.kernel,
                                     stride=self.stride, padding=self.padding,
                                     output_padding=self.output_padding)

    @property
    def output(self):
        """(C_out, OH, OW)."""
        return (self.out_channels, *self.params.output_size(*self.input[1:]))

    @property
    def weight_shape(self):
        return self.params.weight_shape

    def describe(self):
        """'4x4x512 -> 8x8x256 K4 s2 p1' (H x W x C, as the paper writes them)."""
        c, h, w = self.input
        oc, oh, ow = self.output
        text = f"{h}x{w}x{c} -> {oh}x{ow}x{oc} K{self.kernel} s{self.stride} p{self.padding}"
        return text + (f" op{self.output_padding}" if self.output_padding else "")

    def scaled(self, divisor, keep_in=False, keep_out=False):
        """The layer with its channel counts divided by `divisor` (at least 1)."""
        c, h, w = self.input
        return replace(self, input=(c if keep_in else max(1, c // divisor), h, w),
                       out_channels=(self.out_channels if keep_out
                                     else max(1, self.out_channels // divisor)))


@dataclass(frozen=True)
class Network:
    """The deconvolution stack of one network.

    `chained`: each layer's output (C, H, W) is the next layer's input (with
    FCN-8s, after an element-wise fusion that keeps the shape). `paper`: the
    name of the paper's speed-up in PAPER_SPEEDUPS, or None.
    """

    key: str
    title: str
    layers: tuple
    paper: str | None = None
    chained: bool = True
    source: str = ""

    @property
    def paper_speedup(self):
        return PAPER_SPEEDUPS.get(self.paper) if self.paper else None


def _k4s2(names, shapes):
    """K4 s2 p1 layers through `shapes` [(C, H, W), ...]."""
    return tuple(Layer(name, shape, nxt[0], 4, 2, 1)
                 for name, shape, nxt in zip(names, shapes, shapes[1:]))


_DCGAN_STACK = [(512, 4, 4), (256, 8, 8), (128, 16, 16), (64, 32, 32), (3, 64, 64)]

NETWORKS = (
    Network(
        "dcgan", "DCGAN (PyTorch, ngf=64)",
        (Layer("deconv1", (100, 1, 1), 512, 4, 1, 0),
         *_k4s2(("deconv2", "deconv3", "deconv4", "deconv5"), _DCGAN_STACK)),
        paper="DCGAN", source="pytorch/examples dcgan, nz=100 ngf=64 nc=3"),
    Network(
        "dcgan-tf", "DCGAN (TF, authors' config)",
        (Layer("deconv1", (256, 8, 8), 128, 5, 2, 2, 1),
         Layer("deconv2", (128, 16, 16), 64, 5, 2, 2, 1),
         Layer("deconv3", (64, 32, 32), 3, 5, 2, 2, 1)),
        paper="DCGAN", source="warmthless/split-deconvolution DCGAN.csv; K5 s2 SAME as p2 op1"),
    Network(
        "sngan", "SNGAN (standard CNN)",
        (*_k4s2(("deconv1", "deconv2", "deconv3"), _DCGAN_STACK[:4]),
         Layer("deconv4", (64, 32, 32), 3, 3, 1, 1)),
        paper="SNGAN", source="Miyato et al. 2018, standard CNN generator (CIFAR-10)"),
    Network(
        "fst", "Fast style transfer",
        (Layer("deconv1", (128, 64, 64), 64, 3, 2, 1, 1),
         Layer("deconv2", (64, 128, 128), 32, 3, 2, 1, 1)),
        paper="FST", source="Johnson et al. 2016, 256x256 image; K3 s2 SAME as p1 op1"),
    Network(
        "gpgan", "GP-GAN decoder",
        (Layer("deconv1", (4000, 1, 1), 512, 4, 1, 0),
         *_k4s2(("deconv2", "deconv3", "deconv4", "deconv5"), _DCGAN_STACK)),
        paper="GP-GAN", source="Wu et al. 2019, blending GAN decoder, 64x64"),
    Network(
        "fcn8s", "FCN-8s upsampling (VOC, 21 classes, 512x512)",
        (Layer("upscore2", (21, 16, 16), 21, 4, 2, 1),
         Layer("upscore_pool4", (21, 32, 32), 21, 4, 2, 1),
         Layer("upscore8", (21, 64, 64), 21, 16, 8, 4)),
        source="Long et al. 2015; padding instead of Caffe's Crop layer"),
)


def network(key):
    """The Network named `key` (KeyError listing the keys otherwise)."""
    for net in NETWORKS:
        if net.key == key:
            return net
    raise KeyError(f"no network {key!r}: one of {', '.join(n.key for n in NETWORKS)}")


def scaled_network(net, divisor):
    """`net` with every channel count divided by `divisor` (at least 1), keeping the
    chain: a layer's input channels are the previous layer's output channels."""
    if divisor == 1:
        return net
    layers, previous = [], None
    for layer in net.layers:
        scaled = layer.scaled(divisor)
        if net.chained and previous is not None:
            scaled = replace(scaled, input=(previous.out_channels, *scaled.input[1:]))
        layers.append(scaled)
        previous = scaled
    return replace(net, layers=tuple(layers))
