"""One NNabla solver per (optimizer, LRateMultiplier): a multiplier is a real multiplier.

NNC documents LRateMultiplier as scaling a parameter's learning rate; nnabla's own NNP
trainer only tells zero from non-zero. Grouping an optimizer's parameters by multiplier and
giving each group its own solver with learning rate x multiplier makes 0.5 really halve the
step, for every solver type, while 0 leaves the parameter out altogether.
"""
from collections import defaultdict

from .. import schedules, solvers as solver_registry


def group_name(opt_name, mult, n_groups):
    return opt_name if n_groups == 1 else f"{opt_name}-x{mult:g}"


class OptimizerStep:
    """Runs one NNC optimizer: forward and backward of its network, then its solvers' updates."""

    def __init__(self, opt, network, comm=None):
        self.opt, self.network = opt, network
        self.comm = comm  # data-parallel (train/distributed.py): averages gradients and losses over the ranks
        groups = defaultdict(dict)
        for path, (var, mult) in network.trainable.items():
            groups[mult][path] = var
        self.solvers, self.mults = {}, {}
        self.scheduler = None  # set_schedule(): NNabla's learning-rate scheduler, None = constant
        # A loss of several terms (pix2pix's GAN + 100 L1): each term's mean is logged as well.
        self.term_names = [f"{opt.name}-{t}" for t in network.term_means] if len(network.term_means) > 1 else []
        self.terms = {}
        for mult, params in sorted(groups.items()):
            solver = solver_registry.make(opt.solver, opt.solver_settings, lr_scale=mult)
            solver.set_parameters(params)
            self.solvers[group_name(opt.name, mult, len(groups))] = solver
            self.mults[group_name(opt.name, mult, len(groups))] = mult

    def set_schedule(self, iter_per_epoch, max_epoch):
        """The optimizer's lr_scheduler and warm-up, now that an epoch's length is known."""
        base = solver_registry.filled(self.opt.solver, self.opt.solver_settings)
        self.scheduler = schedules.make(self.opt.lr_scheduler, self.opt.warmup,
                                        base[solver_registry.learning_rate_key(self.opt.solver)],
                                        iter_per_epoch, max_epoch)

    def __call__(self, batch, rng, iteration):
        """One iteration; with update_interval N, gradients accumulate over N and update once."""
        n = self.opt.update_interval
        if iteration % n == 0:
            for s in self.solvers.values():
                s.zero_grad()
        net = self.network
        net.feed(batch, rng)
        net.loss.forward(clear_no_need_grad=True)
        if self.term_names:
            self.terms = {n: float(v.d) for n, v in zip(self.term_names, net.term_means.values())}
        net.loss.backward(clear_buffer=True)
        loss, update = float(net.loss.d), (iteration + 1) % n == 0
        if self.comm is not None:  # the whole batch's gradients (and losses) BEFORE the update
            grads = [v.grad for v, _ in net.trainable.values()] if update else []
            loss, *terms = self.comm.all_reduce(grads, [loss, *self.terms.values()])
            self.terms = dict(zip(self.terms, terms))
        if update:
            for name, s in self.solvers.items():
                # nnabla_cli train's order: weight decay on the gradient, then the scheduled rate, then update.
                if self.opt.weight_decay > 0:
                    s.weight_decay(self.opt.weight_decay)
                if self.scheduler is not None:
                    s.set_learning_rate(self.scheduler.get_learning_rate(iteration) * self.mults[name])
                s.update()
        return loss
