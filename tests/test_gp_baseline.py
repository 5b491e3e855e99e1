"""The GP references that PFNs are measured against."""

import gpytorch
import torch

from pfn.gp.baseline import exact_latent_predictive, fit_type2_ml_gp, latent_predictive
from priors import GPPrior


def _gpytorch_latent(xc, yc, xq, lengthscale, outputscale, noise, kernel):
    class Exact(gpytorch.models.ExactGP):
        def __init__(self):
            lik = gpytorch.likelihoods.FixedNoiseGaussianLikelihood(torch.full((len(yc),), noise, dtype=torch.float64))
            super().__init__(xc, yc, lik)
            self.mean = gpytorch.means.ZeroMean()
            base = (gpytorch.kernels.RBFKernel(ard_num_dims=xc.shape[-1]) if kernel == 0 else
                    gpytorch.kernels.MaternKernel(nu=2.5, ard_num_dims=xc.shape[-1]))
            self.cov = gpytorch.kernels.ScaleKernel(base)
            self.cov.base_kernel.lengthscale = lengthscale
            self.cov.outputscale = outputscale

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(self.mean(x), self.cov(x))

    model = Exact().double().eval()
    with torch.no_grad(), gpytorch.settings.fast_computations(False, False, False):
        post = model(xq)
    return post.mean, post.variance


def test_exact_latent_predictive_matches_gpytorch():
    batch = GPPrior().sample(4, 30, 2, generator=torch.Generator().manual_seed(0), n_context=20)
    mean, var = exact_latent_predictive(batch.x[:, :20], batch.y[:, :20], batch.x[:, 20:], batch.meta, jitter=0.0)
    for i in range(4):
        m = batch.meta
        ref_mean, ref_var = _gpytorch_latent(batch.x[i, :20].double(), batch.y[i, :20].double(),
                                             batch.x[i, 20:].double(), m["lengthscale"][i].double(),
                                             float(m["outputscale"][i]), float(m["noise"][i]), int(m["kernel"][i]))
        torch.testing.assert_close(mean[i], ref_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(var[i], ref_var, rtol=1e-4, atol=1e-6)


def test_type2_ml_gp_recovers_a_smooth_function():
    x = torch.linspace(0, 1, 25).unsqueeze(-1)
    y = torch.sin(6 * x[:, 0]) + 0.05 * torch.randn(25, generator=torch.Generator().manual_seed(0))
    mean, var = latent_predictive(fit_type2_ml_gp(x, y, "rbf"), torch.tensor([[0.5]]))
    assert abs(float(mean) - torch.sin(torch.tensor(3.0)).item()) < 0.1
    assert 0 < float(var) < 0.01
