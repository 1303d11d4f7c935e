//! Spatial neighbour graphs of spots or cells for the graph-based domain methods (STAGATE,
//! GraphST): a radius graph (every other cell within a distance, in the coordinates' units) or
//! a kNN graph (the `k` nearest other cells), as STAGATE's `Cal_Spatial_Net` builds them
//! (scikit-learn's `NearestNeighbors`, the cell itself removed), kept as a sparse 0/1
//! adjacency; the networks add self-loops ([`SpatialGraph::with_self_loops`]). Its statistics
//! are what `Stats_Spatial_Net` prints.

use ndarray::ArrayView2;

use super::neighbors::{exact_knn, radius_2d};
use crate::data::matrix::CsrMatrix;

/// How neighbours are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GraphKind {
    /// Every other cell within this distance (inclusive), in the coordinates' units (µm for
    /// imaging platforms, full-resolution pixels for Visium).
    Radius(f64),
    /// The `k` nearest other cells.
    Knn(usize),
}

/// A spatial graph: `adjacency` is `n x n`, 1 for each directed edge from a cell to a
/// neighbour, no self-loops. A radius graph is symmetric; a kNN graph need not be.
#[derive(Debug, Clone)]
pub struct SpatialGraph {
    /// The 0/1 adjacency (rows: cells; columns: their neighbours), sorted indices.
    pub adjacency: CsrMatrix,
    /// How it was built.
    pub kind: GraphKind,
}

/// What `Stats_Spatial_Net` reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphStats {
    /// Cells.
    pub n_cells: usize,
    /// Directed edges (self-loops not counted).
    pub n_edges: usize,
    /// Edges per cell.
    pub mean_neighbors: f64,
    /// Cells with no neighbour.
    pub isolated: usize,
}

impl std::fmt::Display for GraphStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cells, {} edges, {:.4} neighbours per cell on average, {} isolated",
            self.n_cells, self.n_edges, self.mean_neighbors, self.isolated
        )
    }
}

impl SpatialGraph {
    /// Builds the graph on `coords` (`n x 2`, finite).
    pub fn build(coords: ArrayView2<f32>, kind: GraphKind) -> Self {
        let n = coords.nrows();
        let mut trip: Vec<(u32, u32, f32)> = Vec::new();
        match kind {
            GraphKind::Radius(r) => {
                for (i, nb) in radius_2d(coords, r).into_iter().enumerate() {
                    trip.extend(
                        nb.into_iter()
                            .filter(|&(j, _)| j as usize != i)
                            .map(|(j, _)| (i as u32, j, 1.0)),
                    );
                }
            }
            GraphKind::Knn(k) => {
                let nn = exact_knn(coords, (k + 1).min(n));
                for i in 0..n {
                    trip.extend(
                        nn.neighbors(i)
                            .iter()
                            .filter(|&&j| j as usize != i)
                            .take(k)
                            .map(|&j| (i as u32, j, 1.0)),
                    );
                }
            }
        }
        SpatialGraph {
            adjacency: CsrMatrix::from_triplets(n, &mut trip),
            kind,
        }
    }

    /// The adjacency with the diagonal set (`A + I`, what STAGATE's and GraphST's networks
    /// propagate over).
    pub fn with_self_loops(&self) -> CsrMatrix {
        let n = self.adjacency.n_rows;
        let mut trip: Vec<(u32, u32, f32)> = (0..n as u32).map(|i| (i, i, 1.0)).collect();
        for i in 0..n {
            trip.extend(self.adjacency.row(i).0.iter().map(|&j| (i as u32, j, 1.0)));
        }
        CsrMatrix::from_triplets(n, &mut trip)
    }

    /// Edge counts as `Stats_Spatial_Net` prints them.
    pub fn stats(&self) -> GraphStats {
        let n = self.adjacency.n_rows;
        let n_edges = self.adjacency.data.len();
        let isolated = (0..n)
            .filter(|&i| self.adjacency.row(i).0.is_empty())
            .count();
        GraphStats {
            n_cells: n,
            n_edges,
            mean_neighbors: n_edges as f64 / n.max(1) as f64,
            isolated,
        }
    }
}
