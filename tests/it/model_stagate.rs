//! STAGATE's graph-attention autoencoder against its public code on torch-geometric
//! (`tests/fixtures/graph/make_stagate_reference.py`): on 150 DLPFC spots with a 6-NN graph
//! plus self-loops and the same weights, the latent, the reconstruction, the MSE loss and the
//! gradients of the encoder's weights and attention vectors within 1e-5.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use cellscope::model::nets::tensor_values;
use cellscope::model::stagate::{Edges, GatLayer, Stagate};
use serde_json::Value;

use super::model_train::{close_all, f32s};

fn reference() -> Value {
    super::common::fixture_json("graph/stagate_reference.json")
}

#[test]
fn stagate_forward_loss_and_gradients_match_pytorch_geometric() {
    let r = reference();
    let device = Device::flex().autodiff();
    let widths: Vec<usize> = r["widths"]
        .as_array()
        .expect("widths")
        .iter()
        .map(|v| v.as_u64().expect("w") as usize)
        .collect();
    let n = r["n"].as_u64().expect("n") as usize;
    let m = |key: &str, rows: usize, cols: usize| {
        Tensor::<2>::from_data(TensorData::new(f32s(&r[key]), [rows, cols]), &device)
    };
    let v = |key: &str| {
        let x = f32s(&r[key]);
        let len = x.len();
        Tensor::<1>::from_data(TensorData::new(x, [len]), &device)
    };
    let net = Stagate {
        conv1: GatLayer {
            weight: Param::from_tensor(m("w1", widths[0], widths[1])),
            att_src: Param::from_tensor(v("att_src1")),
            att_dst: Param::from_tensor(v("att_dst1")),
        },
        conv2: GatLayer {
            weight: Param::from_tensor(m("w2", widths[1], widths[2])),
            att_src: Param::from_tensor(Tensor::zeros([widths[2]], &device)),
            att_dst: Param::from_tensor(Tensor::zeros([widths[2]], &device)),
        },
    };
    let idx = |key: &str| -> Vec<u32> {
        r[key]
            .as_array()
            .expect("edges")
            .iter()
            .map(|v| v.as_u64().expect("i") as u32)
            .collect()
    };
    let edges = Edges::new(&idx("src"), &idx("dst"), n, &device);
    let x = m("features", n, widths[0]);
    let (h2, h4) = net.forward(x.clone(), &edges);
    close_all(
        &tensor_values(h2.clone()),
        &f32s(&r["h2"]),
        1e-5,
        "latent h2",
    );
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
