//! Diagonal Gaussian q or p over the latent code (method.md §2.3, §3.2).
use tch::Tensor;

/// An independent D-dimensional Gaussian per batch row; σ = exp(logσ).
#[derive(Debug)]
pub struct Gaussian {
    /// `[B, D]`.
    pub mu: Tensor,
    /// `[B, D]`, already clamped by the encoder (see `ModelConfig::log_sigma_clamp`).
    pub log_sigma: Tensor,
}

impl Gaussian {
    /// σ `[B, D]`.
    pub fn sigma(&self) -> Tensor {
        self.log_sigma.exp()
    }

    /// One reparameterised draw μ + σ·ε `[B, D]`; gradients reach μ and logσ.
    pub fn rsample(&self) -> Tensor {
        &self.mu + self.sigma() * self.mu.randn_like()
    }

    /// `n` reparameterised draws `[B, n, D]` (the Stage-I bound-loss samples).
    pub fn rsample_n(&self, n: i64) -> Tensor {
        let s = self.mu.size();
        let eps = Tensor::randn([s[0], n, s[1]], (self.mu.kind(), self.mu.device()));
        self.mu.unsqueeze(1) + self.sigma().unsqueeze(1) * eps
    }

    /// `n` draws without gradient `[B, n, D]` (`dist.sample()`: evaluation, Stage-II bank).
    pub fn sample_n(&self, n: i64) -> Tensor {
        tch::no_grad(|| self.rsample_n(n))
    }

    /// The draws μ + σ·ε for a given ε `[B, n, D]`, without gradient (`stage2.fixed_bank`).
    pub fn with_eps(&self, eps: &Tensor) -> Tensor {
        tch::no_grad(|| self.mu.unsqueeze(1) + self.sigma().unsqueeze(1) * eps)
    }

    /// Closed-form KL(self ‖ prior) summed over D → `[B]`:
    /// Σ_d log σ_p − log σ_q + (σ_q² + (μ_q − μ_p)²) / (2σ_p²) − ½.
    pub fn kl(&self, prior: &Gaussian) -> Tensor {
        self.kl_per_dim(prior).sum_dim_intlist(-1, false, None)
    }

    /// The terms of [`Self::kl`] before the sum, `[B, D]`: how many nats each latent
    /// dimension carries (a dimension near 0 everywhere has collapsed onto the prior).
    pub fn kl_per_dim(&self, prior: &Gaussian) -> Tensor {
        let var_q = (&self.log_sigma * 2.0).exp();
        let var_p = (&prior.log_sigma * 2.0).exp();
        let diff2 = (&self.mu - &prior.mu).square();
        &prior.log_sigma - &self.log_sigma + (var_q + diff2) / (var_p * 2.0) - 0.5
    }
}
