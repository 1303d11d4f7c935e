//! GraphST's network against the PyPI package GraphST 1.1.1 on PyTorch
//! (`tests/fixtures/graph/make_graphst_reference.py`): on 150 DLPFC spots with GraphST's 3-NN
//! graph and the same weights and shuffle, the hidden representation, the reconstruction, both
//! discriminator logits, the loss, every parameter's gradient and the parameters after one Adam
//! step within 1e-5.

use burn::module::Param;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use cellscope::data::matrix::CsrMatrix;
use cellscope::model::graph::graphst::{GraphSt, GraphStGraphs, loss};
use cellscope::model::graph::train::{GraphTraining, graphst_step};
use cellscope::model::nets::tensor_values;
use serde_json::Value;

use super::model_stagate::{indices, matrix, vector};
use super::model_train::{close_all, f32s};

struct Setup {
    net: GraphSt,
    x: Tensor<2>,
    perm: Tensor<1, Int>,
    graphs: GraphStGraphs,
}

fn setup(r: &Value, device: &Device) -> Setup {
    let n = r["n"].as_u64().expect("n") as usize;
    let g = r["genes"].as_u64().expect("genes") as usize;
    let h = r["hidden"].as_u64().expect("hidden") as usize;
    let net = GraphSt {
        weight1: Param::from_tensor(matrix(&r["weight1"], g, h, device)),
        weight2: Param::from_tensor(matrix(&r["weight2"], h, g, device)),
        disc_weight: Param::from_tensor(matrix(&r["disc_weight"], h, h, device)),
        disc_bias: Param::from_tensor(vector(&r["disc_bias"], device)),
    };
    let mut trip: Vec<(u32, u32, f32)> = indices(&r["knn_rows"])
        .into_iter()
        .zip(indices(&r["knn_cols"]))
        .map(|(i, j)| (i, j, 1.0))
        .collect();
    let knn = CsrMatrix::from_triplets(n, &mut trip);
    let perm: Vec<i64> = indices(&r["perm"]).iter().map(|&i| i64::from(i)).collect();
    Setup {
        net,
        x: matrix(&r["features"], n, g, device),
        perm: Tensor::from_data(TensorData::new(perm, [n]), device),
        graphs: GraphStGraphs::new(&knn, device),
    }
}

#[test]
fn graphst_forward_loss_and_gradients_match_the_graphst_package() {
    let r = super::common::fixture_json("graph/graphst_reference.json");
    let device = Device::flex().autodiff();
    let s = setup(&r, &device);
    let out = s.net.forward(s.x.clone(), s.perm, &s.graphs);
    for (got, key) in [
        (&out.hidden, "hidden_emb"),
        (&out.reconstruction, "emb"),
        (&out.ret, "ret"),
        (&out.ret_a, "ret_a"),
    ] {
        close_all(&tensor_values(got.clone()), &f32s(&r[key]), 1e-5, key);
    }
    let l = loss(s.x, &out);
    let value = f64::from(l.clone().into_scalar::<f32>());
    let want = r["loss"].as_f64().expect("loss");
    assert!(
        (value - want).abs() <= 1e-5 * want,
        "loss {value} vs {want}"
    );
    let grads = GradientsParams::from_grads(l.backward(), &s.net);
    let g = &r["grads"];
    let two = |p: &Param<Tensor<2>>| tensor_values(grads.get::<2>(p.id).expect("grad"));
    close_all(&two(&s.net.weight1), &f32s(&g["weight1"]), 1e-5, "dL/dW1");
    close_all(&two(&s.net.weight2), &f32s(&g["weight2"]), 1e-5, "dL/dW2");
    close_all(
        &two(&s.net.disc_weight),
        &f32s(&g["disc.f_k.weight"]),
        1e-5,
        "dL/dB",
    );
    let db = tensor_values(grads.get::<1>(s.net.disc_bias.id).expect("grad"));
    close_all(&db, &f32s(&g["disc.f_k.bias"]), 1e-5, "dL/db");
}

#[test]
fn graphst_training_step_matches_the_graphst_package() {
    let r = super::common::fixture_json("graph/graphst_reference.json");
    let device = Device::flex().autodiff();
    let s = setup(&r, &device);
    let t = GraphTraining::graphst(1, 0);
    let mut optim = t.optimizer();
    let (net, value) = graphst_step(s.net, s.x, s.perm, &s.graphs, &mut optim, &t);
    let want = r["loss"].as_f64().expect("loss");
    assert!(
        (value - want).abs() <= 1e-5 * want,
        "loss {value} vs {want}"
    );
    let a = &r["after"];
    let vals2 = |p: &Param<Tensor<2>>| tensor_values(p.val());
    close_all(&vals2(&net.weight1), &f32s(&a["weight1"]), 1e-5, "W1 after");
    close_all(&vals2(&net.weight2), &f32s(&a["weight2"]), 1e-5, "W2 after");
    close_all(
        &vals2(&net.disc_weight),
        &f32s(&a["disc.f_k.weight"]),
        1e-5,
        "B after",
    );
    close_all(
        &tensor_values(net.disc_bias.val()),
        &f32s(&a["disc.f_k.bias"]),
        1e-5,
        "b after",
    );
}
