//! Compiles the part of OpenFGA's gRPC API the report drives (`proto/openfga/v1`) with the
//! pure-Rust `protox` (no system `protoc`) into prost messages and a tonic client.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    println!(
        "cargo:rerun-if-changed={}",
        proto_dir.join("openfga").display()
    );
    let fds = protox::compile(["openfga/v1/openfga.proto"], [&proto_dir])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
