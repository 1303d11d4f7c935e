//! The reusability study's cross-species step: an Ensembl BioMart ortholog table (seven
//! columns, one-to-one rows only; a registry-sourced subset, `tests/fixtures/genes/`) maps mouse
//! genes to a human model's genes by Ensembl ID where the dataset has IDs and by symbol for the
//! rest, as the committed pandas reference does on real mouse data (mob_st).

use cellscope::data::genes::{GeneAlignment, GeneList, Homologs, dataset_genes};

use crate::common::{fixture, shared_data};

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("genes/homolog_reference.json")).expect("ref");
    serde_json::from_str(&text).expect("json")
}

fn check(al: &GeneAlignment, want: &serde_json::Value, what: &str) {
    let expected: Vec<Option<usize>> = want["model_to_data"]
        .as_array()
        .expect("model_to_data")
        .iter()
        .map(|v| v.as_u64().map(|j| j as usize))
        .collect();
    assert_eq!(
        al.model_to_data, expected,
        "{what}: model gene -> dataset gene"
    );
    let counts = (
        want["by_id"].as_u64().expect("by_id") as usize,
        want["by_symbol"].as_u64().expect("by_symbol") as usize,
    );
    assert_eq!(
        al.through_homologs,
        Some(counts),
        "{what}: genes mapped by ID and by symbol"
    );
}

#[test]
fn biomart_orthologs_map_mouse_genes_by_id_then_symbol() {
    let r = reference();
    let h = Homologs::read_csv(&fixture("genes/mouse_to_human_biomart_subset.csv")).expect("table");
    assert_eq!(
        h.rows as u64,
        r["n_rows_one2one"].as_u64().expect("rows"),
        "one-to-one rows only"
    );
    assert!(h.has_ids());
    let model = GeneList::read_csv(&fixture("genes/human_model_genes.csv")).expect("model genes");
    assert!(model.ids.is_some());
    let mob = cellscope::data::open(&shared_data().join("mob_st.h5ad")).expect("mob_st");
    let data = dataset_genes(&mob);
    assert!(data.ids.is_none(), "mob_st has symbols only");
    let al = GeneAlignment::new(&model, &data, Some(&h));
    check(&al, &r["symbols_only"], "symbols only");
    let with_ids = GeneList {
        ids: Some(
            r["data_ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|v| v.as_str().expect("id").to_string())
                .collect(),
        ),
        symbols: data.symbols.clone(),
    };
    let al = GeneAlignment::new(&model, &with_ids, Some(&h));
    check(&al, &r["with_ids"], "with mouse Ensembl IDs");
    let text = al.coverage().to_string();
    println!("{text}");
    assert!(
        text.contains("by Ensembl ID") && text.contains("by symbol"),
        "{text}"
    );
}

#[test]
fn a_table_whose_columns_cannot_be_understood_names_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("orthologs.csv");
    std::fs::write(
        &path,
        "mouse_thing,other,a,b,c,d,e\nENSMUSG00000000001,x,1,2,3,4,5\n",
    )
    .expect("write");
    let e = Homologs::read_csv(&path).expect_err("unknown columns");
    let m = e.to_string();
    assert!(
        m.contains("orthologs.csv") && m.contains("\"mouse_thing\""),
        "{m}"
    );
    // A BioMart table with no one-to-one row is refused too.
    std::fs::write(
        &path,
        "Gene stable ID,Gene name,Human gene name,Human gene stable ID,Human homology type\n\
         ENSMUSG1,Abc,,ENSG1,ortholog_many2many\n",
    )
    .expect("write");
    let m = Homologs::read_csv(&path)
        .expect_err("no one2one")
        .to_string();
    assert!(m.contains("no usable row"), "{m}");
}
