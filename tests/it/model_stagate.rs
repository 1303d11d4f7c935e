//! STAGATE's graph-attention autoencoder against its public code on torch-geometric
//! (`tests/fixtures/graph/make_stagate_reference.py`): on 150 DLPFC spots with a 6-NN graph
//! plus self-loops and the same weights, the latent, the reconstruction, the MSE loss and the
//! gradients of the encoder's weights and attention vectors within 1e-5, and one training step
//! of `Train_STAGATE.py` (Adam, weight decay, global-norm clipping with the decoder's weight
//! copies counted) likewise; the hand-written CPU path (sparse input, Gram-matrix
//! reconstruction loss) the same.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use cellscope::data::matrix::CsrMatrix;
use cellscope::model::graph::Edges;
use cellscope::model::graph::cpu::{EdgeIndex, SparseInput, StagateCpu, StagateWeights};
use cellscope::model::graph::stagate::{GatLayer, Stagate};
use cellscope::model::graph::train::{GraphTraining, StagateTrainer};
use cellscope::model::nets::tensor_values;
use serde_json::Value;

use super::model_train::{close_all, f32s};

fn reference() -> Value {
    super::common::fixture_json("graph/stagate_reference.json")
}

pub(super) fn indices(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("indices")
        .iter()
        .map(|v| v.as_u64().expect("index") as u32)
        .collect()
}

pub(super) fn matrix(v: &Value, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(f32s(v), [rows, cols]), device)
}

pub(super) fn vector(v: &Value, device: &Device) -> Tensor<1> {
    let x = f32s(v);
    let len = x.len();
    Tensor::from_data(TensorData::new(x, [len]), device)
}

/// The fixture's network, features and edges on `device`.
fn setup(r: &Value, device: &Device) -> (Stagate, Tensor<2>, Edges) {
    let w: Vec<usize> = indices(&r["widths"]).iter().map(|&v| v as usize).collect();
    let n = r["n"].as_u64().expect("n") as usize;
    let net = Stagate {
        conv1: GatLayer {
            weight: Param::from_tensor(matrix(&r["w1"], w[0], w[1], device)),
            att_src: Param::from_tensor(vector(&r["att_src1"], device)),
            att_dst: Param::from_tensor(vector(&r["att_dst1"], device)),
        },
        conv2: GatLayer {
            weight: Param::from_tensor(matrix(&r["w2"], w[1], w[2], device)),
            att_src: Param::from_tensor(Tensor::zeros([w[2]], device)),
            att_dst: Param::from_tensor(Tensor::zeros([w[2]], device)),
        },
    };
    let edges = Edges::new(&indices(&r["src"]), &indices(&r["dst"]), n, device);
    (net, matrix(&r["features"], n, w[0], device), edges)
}

#[test]
fn stagate_forward_loss_and_gradients_match_pytorch_geometric() {
    let r = reference();
    let device = Device::flex().autodiff();
    let (net, x, edges) = setup(&r, &device);
    let (h2, h4) = net.forward(x.clone(), &edges);
    close_all(&tensor_values(h2), &f32s(&r["h2"]), 1e-5, "latent h2");
    close_all(
        &tensor_values(h4.clone()),
        &f32s(&r["h4"]),
        1e-5,
        "reconstruction h4",
    );
    let loss = (h4 - x).powi_scalar(2).mean();
    let value = f64::from(loss.clone().into_scalar::<f32>());
    let want = r["loss"].as_f64().expect("loss");
    assert!(
        (value - want).abs() <= 1e-5 * want,
        "loss {value} vs {want}"
    );
    let grads = loss.backward();
    let g2 = |p: &Param<Tensor<2>>| tensor_values(p.val().grad(&grads).expect("grad"));
    let g1 = |p: &Param<Tensor<1>>| tensor_values(p.val().grad(&grads).expect("grad"));
    close_all(&g2(&net.conv1.weight), &f32s(&r["grad_w1"]), 1e-5, "dL/dW1");
    close_all(&g2(&net.conv2.weight), &f32s(&r["grad_w2"]), 1e-5, "dL/dW2");
    close_all(
        &g1(&net.conv1.att_src),
        &f32s(&r["grad_att_src1"]),
        1e-5,
        "dL/da_src",
    );
    close_all(
        &g1(&net.conv1.att_dst),
        &f32s(&r["grad_att_dst1"]),
        1e-5,
        "dL/da_dst",
    );
}

#[test]
fn stagate_training_step_matches_train_stagate() {
    let r = reference();
    let device = Device::flex().autodiff();
    for (clip, want) in r["steps"].as_object().expect("steps") {
        let (net, x, edges) = setup(&r, &device);
        let t = GraphTraining {
            clip: Some(clip.parse().expect("clip")),
            ..GraphTraining::stagate(1, 0)
        };
        let mut trainer = StagateTrainer::new(net, t);
        let loss = trainer.step(x, &edges);
        let net = trainer.net;
        let ref_loss = r["loss"].as_f64().expect("loss");
        assert!((loss - ref_loss).abs() <= 1e-5 * ref_loss, "loss {loss}");
        let what = |p: &str| format!("{p} after one step, clip {clip}");
        close_all(
            &tensor_values(net.conv1.weight.val()),
            &f32s(&want["w1"]),
            1e-5,
            &what("W1"),
        );
        close_all(
            &tensor_values(net.conv2.weight.val()),
            &f32s(&want["w2"]),
            1e-5,
            &what("W2"),
        );
        close_all(
            &tensor_values(net.conv1.att_src.val()),
            &f32s(&want["att_src1"]),
            1e-5,
            &what("a_src"),
        );
        close_all(
            &tensor_values(net.conv1.att_dst.val()),
            &f32s(&want["att_dst1"]),
            1e-5,
            &what("a_dst"),
        );
    }
}

/// The fixture's weights, features and edges for the CPU path.
fn cpu_setup(r: &Value) -> (StagateWeights, SparseInput, EdgeIndex) {
    let w: Vec<usize> = indices(&r["widths"]).iter().map(|&v| v as usize).collect();
    let n = r["n"].as_u64().expect("n") as usize;
    let weights = StagateWeights {
        w1: f32s(&r["w1"]),
        att_src: f32s(&r["att_src1"]),
        att_dst: f32s(&r["att_dst1"]),
        w2: f32s(&r["w2"]),
        widths: [w[0], w[1], w[2]],
    };
    let x = ndarray::Array2::from_shape_vec((n, w[0]), f32s(&r["features"])).expect("shape");
    let input = SparseInput::new(CsrMatrix::from_dense(&x));
    let edges = EdgeIndex::new(&indices(&r["src"]), &indices(&r["dst"]), n);
    (weights, input, edges)
}

#[test]
fn stagate_cpu_path_matches_pytorch_geometric() {
    let r = reference();
    let (weights, x, edges) = cpu_setup(&r);
    close_all(
        &weights.latent(&x.x, &edges),
        &f32s(&r["h2"]),
        1e-5,
        "latent h2 (CPU path)",
    );
    let (loss, g) = weights.gradients(&x, &edges);
    let want = r["loss"].as_f64().expect("loss");
    assert!((loss - want).abs() <= 1e-5 * want, "loss {loss} vs {want}");
    close_all(&g.w1, &f32s(&r["grad_w1"]), 1e-5, "dL/dW1 (CPU path)");
    close_all(&g.w2, &f32s(&r["grad_w2"]), 1e-5, "dL/dW2 (CPU path)");
    close_all(
        &g.att_src,
        &f32s(&r["grad_att_src1"]),
        1e-5,
        "dL/da_src (CPU path)",
    );
    close_all(
        &g.att_dst,
        &f32s(&r["grad_att_dst1"]),
        1e-5,
        "dL/da_dst (CPU path)",
    );
    for (clip, want) in r["steps"].as_object().expect("steps") {
        let t = GraphTraining {
            clip: Some(clip.parse().expect("clip")),
            ..GraphTraining::stagate(1, 0)
        };
        let (weights, x, edges) = cpu_setup(&r);
        let mut cpu = StagateCpu::new(weights, t);
        cpu.step(&x, &edges);
        let w = &cpu.weights;
        let what = |p: &str| format!("{p} after one CPU step, clip {clip}");
        close_all(&w.w1, &f32s(&want["w1"]), 1e-5, &what("W1"));
        close_all(&w.w2, &f32s(&want["w2"]), 1e-5, &what("W2"));
        close_all(&w.att_src, &f32s(&want["att_src1"]), 1e-5, &what("a_src"));
        close_all(&w.att_dst, &f32s(&want["att_dst1"]), 1e-5, &what("a_dst"));
    }
}

/// The GPU's path (burn's autodiff on wgpu, lavapipe here) and the CPU's hand-written path
/// train the same network: equal latents after a few epochs of the full recipe.
#[test]
fn stagate_trains_alike_on_wgpu_and_the_cpu_path() {
    use cellscope::model::BackendChoice;
    use cellscope::model::engine::select_device;
    use cellscope::model::graph::train::train_stagate;
    let r = reference();
    let w: Vec<usize> = indices(&r["widths"]).iter().map(|&v| v as usize).collect();
    let n = r["n"].as_u64().expect("n") as usize;
    let x = ndarray::Array2::from_shape_vec((n, w[0]), f32s(&r["features"])).expect("shape");
    let mut trip: Vec<(u32, u32, f32)> = indices(&r["src"])
        .into_iter()
        .zip(indices(&r["dst"]))
        .map(|(j, i)| (j, i, 1.0))
        .collect();
    let g = CsrMatrix::from_triplets(n, &mut trip);
    let t = GraphTraining::stagate(5, 3);
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let mut losses: Vec<Vec<f64>> = Vec::new();
    let mut latents = Vec::new();
    for choice in [BackendChoice::Cpu, BackendChoice::Wgpu] {
        let (_, device, _) = select_device(choice).expect("device");
        let mut l = Vec::new();
        let z = train_stagate(
            &x,
            &g,
            [w[1], w[2]],
            &t,
            &device,
            &cancel,
            &mut |_, _, v| l.push(v),
        )
        .expect("train");
        losses.push(l);
        latents.push(z.iter().copied().collect::<Vec<f32>>());
    }
    assert_eq!(losses[0].len(), 5);
    for (a, b) in losses[0].iter().zip(&losses[1]) {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs(),
            "loss {a} (CPU) vs {b} (wgpu)"
        );
    }
    assert!(
        losses[0][4] < losses[0][0],
        "the loss falls: {:?}",
        losses[0]
    );
    close_all(&latents[0], &latents[1], 1e-3, "latent, CPU path vs wgpu");
}
