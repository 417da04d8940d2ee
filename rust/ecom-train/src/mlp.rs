//! A small neural net (an MLP) with candle, the maintained pure-Rust framework: standardised
//! inputs, two hidden ReLU layers, one logit. The scaling is saved next to the weights.
use anyhow::Context;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{linear, ops, Linear, Module, Optimizer, VarBuilder, VarMap};
use std::path::Path;

/// How the net is trained.
#[derive(Debug, Clone, Copy)]
pub struct MlpConfig {
    /// Seed of the weights and the batch order.
    pub seed: u64,
    /// Most epochs.
    pub max_epochs: usize,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    /// Rows per step.
    pub batch: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
}

/// Hidden layer widths.
pub const HIDDEN: [usize; 2] = [32, 16];

/// The feature scaling: (x - mean) / std per column.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Scaler {
    /// Column means over the training rows.
    pub mean: Vec<f32>,
    /// Column standard deviations (1 where a column is constant).
    pub std: Vec<f32>,
}

impl Scaler {
    /// Fits on row-major `x` with `cols` columns.
    pub fn fit(x: &[f32], cols: usize) -> Self {
        let rows = (x.len() / cols).max(1) as f64;
        let mut mean = vec![0f64; cols];
        let mut sq = vec![0f64; cols];
        for row in x.chunks(cols) {
            for (c, v) in row.iter().enumerate() {
                mean[c] += f64::from(*v);
                sq[c] += f64::from(*v) * f64::from(*v);
            }
        }
        let mean: Vec<f64> = mean.iter().map(|m| m / rows).collect();
        let std = sq.iter().zip(&mean).map(|(s, m)| (s / rows - m * m).max(0.0).sqrt() as f32).collect::<Vec<_>>();
        Self {
            mean: mean.iter().map(|m| *m as f32).collect(),
            std: std.into_iter().map(|s| if s > 1e-6 { s } else { 1.0 }).collect(),
        }
    }

    /// Scales row-major `x` in place.
    pub fn apply(&self, x: &mut [f32]) {
        let cols = self.mean.len();
        for row in x.chunks_mut(cols) {
            for (c, v) in row.iter_mut().enumerate() {
                *v = (*v - self.mean[c]) / self.std[c];
            }
        }
    }
}

/// The trained net with its scaling.
pub struct Mlp {
    layers: Vec<Linear>,
    /// Input scaling.
    pub scaler: Scaler,
    vars: VarMap,
}

/// What training found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MlpInfo {
    /// Epochs run.
    pub epochs: usize,
    /// Epoch with the best validation loss (its weights are kept).
    pub best_epoch: usize,
    /// Validation log loss there.
    pub valid_logloss: f64,
    /// Layer widths, input to output.
    pub layers: Vec<usize>,
}

fn build(vb: VarBuilder<'_>, inputs: usize) -> anyhow::Result<Vec<Linear>> {
    let mut layers = Vec::new();
    let mut width = inputs;
    for (i, h) in HIDDEN.iter().chain(std::iter::once(&1)).enumerate() {
        layers.push(linear(width, *h, vb.pp(format!("l{i}")))?);
        width = *h;
    }
    Ok(layers)
}

fn logits(layers: &[Linear], x: &Tensor) -> candle_core::Result<Tensor> {
    let mut h = x.clone();
    for (i, l) in layers.iter().enumerate() {
        h = l.forward(&h)?;
        if i + 1 < layers.len() {
            h = h.relu()?;
        }
    }
    h.squeeze(D::Minus1)
}

/// Binary cross-entropy on logits, stable for large |z|: softplus(z) - y·z.
fn bce_with_logits(z: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    // softplus(z) = max(z, 0) + log(1 + exp(-|z|))
    let softplus = (z.relu()? + ((z.abs()?.neg()?.exp()? + 1.0)?.log()?))?;
    (softplus - (z * y)?)?.mean_all()
}

fn tensor(x: &[f32], cols: usize, dev: &Device) -> candle_core::Result<Tensor> {
    Tensor::from_slice(x, (x.len() / cols, cols), dev)
}

impl Mlp {
    /// Trains on row-major features with early stopping on the validation loss.
    pub fn train(
        x_train: &[f32],
        y_train: &[bool],
        x_valid: &[f32],
        y_valid: &[bool],
        cols: usize,
        cfg: &MlpConfig,
        bar: &indicatif::ProgressBar,
    ) -> anyhow::Result<(Self, MlpInfo)> {
        let dev = Device::Cpu;
        let scaler = Scaler::fit(x_train, cols);
        let (mut xt, mut xv) = (x_train.to_vec(), x_valid.to_vec());
        scaler.apply(&mut xt);
        scaler.apply(&mut xv);
        let yt: Vec<f32> = y_train.iter().map(|b| f32::from(u8::from(*b))).collect();
        let yv: Vec<f32> = y_valid.iter().map(|b| f32::from(u8::from(*b))).collect();
        let (xv_t, yv_t) = (tensor(&xv, cols, &dev)?, Tensor::from_slice(&yv, yv.len(), &dev)?);
        let vars = VarMap::new();
        let layers = build(VarBuilder::from_varmap(&vars, DType::F32, &dev), cols)?;
        seeded_init(&vars, cfg.seed)?;
        let mut opt = candle_nn::AdamW::new(
            vars.all_vars(),
            candle_nn::ParamsAdamW { lr: cfg.learning_rate, weight_decay: 1e-4, ..Default::default() },
        )?;
        let rows = yt.len();
        let mut order: Vec<usize> = (0..rows).collect();
        let mut rng = cfg.seed | 1;
        let (mut best, mut best_epoch, mut best_weights) = (f64::INFINITY, 0, Vec::new());
        let mut epochs = 0;
        for epoch in 0..cfg.max_epochs {
            epochs = epoch + 1;
            // Fisher-Yates with xorshift: a reproducible batch order per seed.
            for i in (1..rows).rev() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                order.swap(i, (rng % (i as u64 + 1)) as usize);
            }
            for chunk in order.chunks(cfg.batch) {
                let xb: Vec<f32> = chunk.iter().flat_map(|&r| xt[r * cols..(r + 1) * cols].iter().copied()).collect();
                let yb: Vec<f32> = chunk.iter().map(|&r| yt[r]).collect();
                let z = logits(&layers, &tensor(&xb, cols, &dev)?)?;
                let loss = bce_with_logits(&z, &Tensor::from_slice(&yb, yb.len(), &dev)?)?;
                opt.backward_step(&loss)?;
            }
            let vloss = f64::from(bce_with_logits(&logits(&layers, &xv_t)?, &yv_t)?.to_scalar::<f32>()?);
            bar.inc(1);
            if vloss < best {
                best = vloss;
                best_epoch = epoch;
                best_weights = snapshot(&vars)?;
            } else if epoch - best_epoch >= cfg.patience {
                break;
            }
        }
        restore(&vars, &best_weights)?;
        let mut widths = vec![cols];
        widths.extend(HIDDEN);
        widths.push(1);
        Ok((
            Self { layers, scaler, vars },
            MlpInfo { epochs, best_epoch: best_epoch + 1, valid_logloss: best, layers: widths },
        ))
    }

    /// Purchase probabilities for row-major (unscaled) features.
    pub fn predict(&self, x: &[f32]) -> anyhow::Result<Vec<f64>> {
        let cols = self.scaler.mean.len();
        let mut xs = x.to_vec();
        self.scaler.apply(&mut xs);
        let z = logits(&self.layers, &tensor(&xs, cols, &Device::Cpu)?)?;
        let p = ops::sigmoid(&z)?.to_vec1::<f32>()?;
        Ok(p.into_iter().map(f64::from).collect())
    }

    /// Saves the weights (safetensors) and the scaling (JSON) under `stem`.safetensors / .json.
    pub fn save(&self, dir: &Path, stem: &str) -> anyhow::Result<()> {
        self.vars.save(dir.join(format!("{stem}.safetensors")))?;
        let meta =
            serde_json::json!({"scaler": self.scaler, "hidden": HIDDEN, "activation": "relu", "output": "sigmoid"});
        std::fs::write(dir.join(format!("{stem}.json")), serde_json::to_vec_pretty(&meta)?)?;
        Ok(())
    }

    /// Loads what `save` wrote.
    pub fn load(dir: &Path, stem: &str) -> anyhow::Result<Self> {
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("{stem}.json"))).with_context(|| format!("reading {stem}.json"))?,
        )?;
        let scaler: Scaler = serde_json::from_value(meta["scaler"].clone()).context("the MLP's scaler")?;
        let mut vars = VarMap::new();
        let layers = build(VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu), scaler.mean.len())?;
        vars.load(dir.join(format!("{stem}.safetensors")))?;
        Ok(Self { layers, scaler, vars })
    }
}

/// Candle's CPU device cannot be seeded, so the weights are drawn here: uniform in ±1/√fan_in
/// (PyTorch's default for linear layers) from a seeded xorshift, in a fixed order of names.
fn seeded_init(vars: &VarMap, seed: u64) -> candle_core::Result<()> {
    let data = vars.data().lock().expect("the VarMap lock is never poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        // weight: (out, in); bias: (out). fan_in = the weight's input width.
        let fan_in = if dims.len() == 2 {
            dims[1]
        } else {
            data.get(&name.replace("bias", "weight")).map_or(1, |w| w.dims()[1])
        };
        let bound = 1.0 / (fan_in as f64).sqrt();
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0) as f32 * bound as f32
            })
            .collect();
        var.set(&Tensor::from_vec(values, dims, var.device())?)?;
    }
    Ok(())
}

fn snapshot(vars: &VarMap) -> candle_core::Result<Vec<(String, Tensor)>> {
    let data = vars.data().lock().expect("the VarMap lock is never poisoned");
    data.iter().map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?))).collect()
}

fn restore(vars: &VarMap, weights: &[(String, Tensor)]) -> candle_core::Result<()> {
    let data = vars.data().lock().expect("the VarMap lock is never poisoned");
    for (k, t) in weights {
        if let Some(v) = data.get(k) {
            v.set(t)?;
        }
    }
    Ok(())
}
