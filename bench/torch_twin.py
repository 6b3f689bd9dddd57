"""The PyTorch twin of graphs/cgan_mnist.yaml: the same four networks, update order and batch size.

What many users would write instead of an NNC graph: the generator and discriminator of NNC's
mnist_dcgan_with_label (label maps concatenated as in the graph, BatchNorm with NNC's epsilon
0.01 and momentum 0.1 = decay 0.9), three Adam optimizers stepped in NNC's order on each
minibatch: Generator (discriminator frozen), DiscriminatorFake (generator run in training mode
without gradients, fresh noise), DiscriminatorReal (its own Adam state, like NNC's). A
contestant of bench/bench.py; run by the benchmark's own venv (bench/.venv-torch):

    bench/.venv-torch/bin/python bench/torch_twin.py --threads 1 [--batch 64]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as TF

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _worker import serve  # noqa: E402


def bn(n, d2=True):
    return (tnn.BatchNorm2d if d2 else tnn.BatchNorm1d)(n, eps=0.01, momentum=0.1)


class Generator(tnn.Module):
    def __init__(self):
        super().__init__()
        self.affine, self.bn = tnn.Linear(110, 512, bias=False), bn(512, False)
        self.affine_2, self.bn_2 = tnn.Linear(522, 3136, bias=False), bn(64)
        self.deconv, self.bn_3 = tnn.ConvTranspose2d(74, 32, 6, 2, 2, bias=False), bn(32)
        self.deconv_2 = tnn.ConvTranspose2d(42, 1, 6, 2, 2)

    def forward(self, z, onehot):
        m = onehot[:, :, None, None]
        h = TF.relu(self.bn(self.affine(torch.cat([z, onehot], 1))))
        h = TF.relu(self.bn_2(self.affine_2(torch.cat([h, onehot], 1)).view(-1, 64, 7, 7)))
        h = TF.relu(self.bn_3(self.deconv(torch.cat([m.expand(-1, -1, 7, 7), h], 1))))
        return torch.sigmoid(self.deconv_2(torch.cat([m.expand(-1, -1, 14, 14), h], 1)))


class Discriminator(tnn.Module):
    def __init__(self):
        super().__init__()
        self.conv_3, self.bn_6 = tnn.Conv2d(11, 32, 5, 2, 2, bias=False), bn(32)
        self.conv_4, self.bn_4 = tnn.Conv2d(42, 64, 5, 2, 2, bias=False), bn(64)
        self.affine_3, self.bn_5 = tnn.Linear(3146, 512, bias=False), bn(512, False)
        self.affine_4 = tnn.Linear(522, 1)

    def forward(self, x, onehot):
        m = onehot[:, :, None, None]
        h = TF.relu(self.bn_6(self.conv_3(torch.cat([x, m.expand(-1, -1, 28, 28)], 1))))
        h = TF.relu(self.bn_4(self.conv_4(torch.cat([h, m.expand(-1, -1, 14, 14)], 1))))
        h = TF.relu(self.bn_5(self.affine_3(torch.cat([h.flatten(1), onehot], 1))))
        return self.affine_4(torch.cat([h, onehot], 1))  # the logit; the loss applies the sigmoid


class Twin:
    def __init__(self, batch):
        self.g, self.d = Generator(), Discriminator()
        adam = lambda p: torch.optim.Adam(p, lr=0.0005, betas=(0.5, 0.999), eps=1e-8)  # noqa: E731
        self.opt_g, self.opt_df, self.opt_dr = adam(self.g.parameters()), adam(self.d.parameters()), \
            adam(self.d.parameters())
        self.ones, self.zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
        self.batch = batch

    def step(self, data):
        x, onehot = data
        z = torch.empty(self.batch, 100).uniform_(-1, 1)
        self.d.requires_grad_(False)                     # Generator: D frozen
        self.opt_g.zero_grad(set_to_none=True)
        TF.binary_cross_entropy_with_logits(self.d(self.g(z, onehot), onehot), self.ones).backward()
        self.opt_g.step()
        self.d.requires_grad_(True)
        z = torch.empty(self.batch, 100).uniform_(-1, 1)  # DiscriminatorFake: G frozen, fresh noise
        with torch.no_grad():
            fake = self.g(z, onehot)
        self.opt_df.zero_grad(set_to_none=True)
        TF.binary_cross_entropy_with_logits(self.d(fake, onehot), self.zeros).backward()
        self.opt_df.step()
        self.opt_dr.zero_grad(set_to_none=True)          # DiscriminatorReal
        TF.binary_cross_entropy_with_logits(self.d(x, onehot), self.ones).backward()
        self.opt_dr.step()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    twin, data = Twin(args.batch), np.random.RandomState(1)

    def make_batch(i):
        x = torch.from_numpy(data.rand(args.batch, 1, 28, 28).astype(np.float32))
        return x, TF.one_hot(torch.from_numpy(data.randint(0, 10, args.batch)), 10).float()
    serve(twin.step, make_batch, {"torch": torch.__version__, "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
