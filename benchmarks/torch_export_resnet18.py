"""The plain-PyTorch way to get benchmarks/specs/resnet18.yaml as ONNX: an nn.Module and torch.onnx.export.

    python benchmarks/torch_export_resnet18.py [--dynamo] [-o model.onnx] [--weights-from-spec SPEC]

This is the baseline `specc build` is timed against (benchmarks/compile_speed.py)
and the model its ONNX Runtime latency is compared with (benchmarks/ort_latency.py).
The network is written out by hand, as torchvision lays out resnet18, so the
benchmark needs nothing beyond torch. Without `-o` the model goes to a
temporary file that is removed afterwards: the cost of the export is the point.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch
from torch import nn

OPSET = 17  # specc's default opset, so both models use the same operator versions
INPUT_SHAPE = (3, 224, 224)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a shortcut, then ReLU; a 1x1 conv + BN projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + shortcut)


class ResNet18(nn.Module):
    def __init__(self, classes: int = 1000, width: int = 64, blocks_per_stage: int = 2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, cin = [], width
        for i in range(4):
            cout = width * 2**i
            blocks = [BasicBlock(cin, cout, 1 if i == 0 else 2)]
            blocks += [BasicBlock(cout, cout, 1) for _ in range(blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def copy_weights_from_spec(model: nn.Module, spec_path: str) -> None:
    """Load the initial weights specc gives `spec_path` into `model`, in order, checking every shape.

    They are the weights `specc build` starts from (seeded per tensor name), before
    its passes fold BatchNormalization into the convolutions. specc lists a
    layer's tensors in the order the spec declares them (conv, its BN, the second
    conv, its BN, then the projection), which is the order of this module's state
    dict, so a shape check per pair catches a mismatch between the two networks.
    """
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's specc
    from specc.codegen.weights import init_weights
    from specc.compiler import compile_spec
    from specc.limits import DEFAULT_LIMITS

    source = list(init_weights(compile_spec(spec_path, DEFAULT_LIMITS).graph).items())
    target = [(k, v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    if len(source) != len(target):
        raise SystemExit(f"{spec_path} has {len(source)} weight tensors, this ResNet-18 has {len(target)}")
    with torch.no_grad():
        for (name, array), (key, value) in zip(source, target):
            if tuple(array.shape) != tuple(value.shape):
                raise SystemExit(f"{name} {list(array.shape)} does not fit {key} {list(value.shape)}")
            value.copy_(torch.from_numpy(array.copy()))


def export(model: nn.Module, path: str, dynamo: bool) -> None:
    example = torch.randn(1, *INPUT_SHAPE)
    if dynamo:
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(model, (example,), path, dynamo=True, input_names=["image"], output_names=["output"],
                          dynamic_shapes={"x": {0: batch}})  # its own default opset: asking for 17
        # makes it convert down afterwards, which fails for ReduceMean and falls back with a warning
    else:
        torch.onnx.export(model, (example,), path, dynamo=False, input_names=["image"], output_names=["output"],
                          dynamic_axes={"image": {0: "batch"}, "output": {0: "batch"}}, opset_version=OPSET,
                          do_constant_folding=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dynamo", action="store_true", help="use the torch.export-based exporter (needs onnxscript)")
    parser.add_argument("-o", "--output", help="keep the model here (default: a temporary file, removed)")
    parser.add_argument("--weights-from-spec", metavar="SPEC",
                        help="start from specc's initial weights for this spec (benchmarks/specs/resnet18.yaml)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = ResNet18().eval()
    if args.weights_from_spec:
        copy_weights_from_spec(model, args.weights_from_spec)
    if args.output:
        export(model, args.output, args.dynamo)
        return 0
    with tempfile.TemporaryDirectory(prefix="torch-export-") as tmp:
        export(model, os.path.join(tmp, "model.onnx"), args.dynamo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
