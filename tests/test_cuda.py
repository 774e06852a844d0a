"""CUDA: a file written on the GPU decodes on the CPU and back (skipped without CUDA)."""
import numpy as np
import pytest
import torch

import armcodec

from conftest import load

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("name", ["kodim05_rgb_130x70.png", "usc_sipi_6.1_gray_40x33.png", "kodim03_rgba_32x24.png"])
def test_gpu_and_cpu_write_identical_files(tiny_dir, name):
    img = load(name)
    gpu = armcodec.Codec("tiny", device="cuda", weights_dir=tiny_dir)
    cpu = armcodec.Codec("tiny", device="cpu", weights_dir=tiny_dir)
    data = gpu.compress(img)
    assert data == cpu.compress(img)
    assert np.array_equal(cpu.decompress(data), img)
    assert np.array_equal(gpu.decompress(cpu.compress(img)), img)


def test_default_model_gpu_to_cpu():
    img = load("kodim23_rgb_64x48.png")
    data = armcodec.Codec(device="cuda").compress(img)
    assert np.array_equal(armcodec.Codec(device="cpu").decompress(data), img)


@pytest.mark.parametrize("name", ["kodim05_rgb_130x70.png", "kodim03_rgba_32x24.png"])
def test_orientation_search_on_gpu_decodes_on_cpu(name):
    """The orientation tool (max preset): the orientation is chosen with float math on the GPU; whatever it
    picks, the CPU decodes the file exactly (the files may differ only on a near tie)."""
    img = load(name)
    data = armcodec.Codec("max", device="cuda").compress(img)
    assert np.array_equal(armcodec.Codec("max", device="cpu").decompress(data).reshape(img.shape), img)


def test_int8_kernel_is_exact_on_the_gpu_and_writes_the_cpu_files(tiny_dir):
    """cuBLAS int8 products (the kernel ``auto`` picks on CUDA): the same integers as the float
    kernel on every shipped layer, and the same files as the CPU's float kernel."""
    from armcodec.exact import kernels
    from test_kernels import extreme_inputs, shipped_layers

    assert kernels.int8_exact("cuda")
    assert armcodec.Codec("tiny", device="cuda", weights_dir=tiny_dir).kernel_in_use == "int8"
    for name, layer in shipped_layers():
        x = extreme_inputs(layer, rows=30)
        with kernels.using("float"):
            want = layer.acc(x)
        gpu = layer.to("cuda")
        with kernels.using("int8"):
            got = gpu.acc(x.cuda()).cpu()
        assert torch.equal(got, want), name
    img = load("kodim05_rgb_130x70.png")
    gpu = armcodec.Codec("tiny", device="cuda", weights_dir=tiny_dir, kernel="int8")
    cpu = armcodec.Codec("tiny", device="cpu", weights_dir=tiny_dir, kernel="float")
    data = gpu.compress(img)
    assert data == cpu.compress(img)
    assert np.array_equal(gpu.decompress(data), img)
    data = armcodec.Codec(device="cuda", kernel="int8").compress(img[:40, :40])
    assert np.array_equal(armcodec.Codec(device="cpu", kernel="float").decompress(data), img[:40, :40])


@pytest.mark.parametrize("name", ["kodim05_rgb_130x70.png", "usc_sipi_6.1_la_28x21.png"])
def test_the_pyramid_writes_the_same_files_on_the_gpu_and_the_cpu(name):
    """The multi-scale family's dense passes (int8 on the GPU, float on the CPU): the same bytes."""
    from test_golden import PYRAMID

    img = load(name)
    gpu = armcodec.Codec("golden-pyramid", device="cuda", weights_dir=PYRAMID, classic=False)
    cpu = armcodec.Codec("golden-pyramid", device="cpu", weights_dir=PYRAMID, classic=False, kernel="float")
    data = gpu.compress(img)
    assert data == cpu.compress(img)
    assert np.array_equal(cpu.decompress(data), img) and np.array_equal(gpu.decompress(data), img)


@pytest.mark.parametrize("predictor", [True, False])
def test_the_video_preset_writes_the_same_files_on_the_gpu_and_the_cpu(predictor):
    """The temporal model (its context terms, int8 on the GPU) and, with the predictor, the mixture
    of its logistics with the previous-frame predictor: a 4:2:0 clip with sub-pixel motion, the
    same bytes on both devices, each file decoded on the other."""
    import io

    from armcodec.io.frames import write_y4m, y4m_source
    from armcodec.video import VideoCodec
    from conftest import subpixel_frames, y4m_bytes

    clip = y4m_bytes(subpixel_frames(4, 40, 56))

    def encode(codec):
        out = io.BytesIO()
        codec.encode(y4m_source(io.BytesIO(clip)), out)
        return out.getvalue()

    def decode(codec, data):
        f = io.BytesIO(data)
        header, out = codec.open(f), io.BytesIO()
        write_y4m(out, header.description, (fr for _, fr, _ in codec.decode(f, header)))
        return out.getvalue()

    gpu, cpu = VideoCodec("video", "cuda", predictor=predictor), VideoCodec("video", "cpu", predictor=predictor)
    data = encode(gpu)
    assert data == encode(cpu)
    assert decode(cpu, data) == clip and decode(gpu, data) == clip
