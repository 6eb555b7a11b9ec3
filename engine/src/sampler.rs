//! Picks the next token from logits: greedy at temperature 0, otherwise temperature plus
//! nucleus (top-p) sampling from a seeded generator.

use rand::SeedableRng;
use rand::distr::{Distribution, weighted::WeightedIndex};
use rand::rngs::StdRng;

#[derive(Debug)]
pub struct Sampler {
    temperature: f32,
    top_p: f32,
    rng: StdRng,
}

impl Sampler {
    pub fn new(temperature: f32, top_p: f32, seed: u64) -> Self {
        Self {
            temperature,
            top_p,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.temperature <= 0.0 {
            return argmax(logits);
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            return argmax(logits);
        }
        let mut probs: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, ((l - max) / self.temperature).exp()))
            .filter(|(_, p)| *p > 0.0)
            .collect();
        probs.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        let total: f32 = probs.iter().map(|(_, p)| p).sum();
        let mut kept = 0;
        let mut acc = 0.0;
        for (_, p) in &probs {
            acc += p / total;
            kept += 1;
            if acc >= self.top_p {
                break;
            }
        }
        probs.truncate(kept.max(1));
        match WeightedIndex::new(probs.iter().map(|(_, p)| *p)) {
            Ok(dist) => probs[dist.sample(&mut self.rng)].0,
            Err(_) => probs[0].0,
        }
    }
}

/// Index of the largest logit; the lowest index wins ties so greedy decoding is reproducible.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_max() {
        let mut s = Sampler::new(0.0, 0.9, 1);
        assert_eq!(s.sample(&[0.1, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[1.0, 1.0]), 0, "ties go to the lowest id");
    }

    #[test]
    fn tiny_top_p_is_greedy() {
        let mut s = Sampler::new(1.0, 1e-6, 1);
        for _ in 0..20 {
            assert_eq!(s.sample(&[0.0, 5.0, 4.9]), 1);
        }
    }

    #[test]
    fn same_seed_same_draws() {
        let logits = [1.0, 1.1, 0.9, 1.05];
        let draws = |seed| {
            let mut s = Sampler::new(1.0, 1.0, seed);
            (0..32).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draws(9), draws(9));
        assert!(
            draws(9).iter().any(|&t| t != draws(9)[0]),
            "sampling explores"
        );
    }

    #[test]
    fn degenerate_logits_do_not_panic() {
        let mut s = Sampler::new(0.7, 0.9, 1);
        let _ = s.sample(&[f32::NEG_INFINITY, f32::NEG_INFINITY]);
        let _ = s.sample(&[f32::NAN, 1.0]);
        let _ = s.sample(&[f32::INFINITY, 1.0]);
    }
}
