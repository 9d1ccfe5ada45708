//! `akspolicy_initiative`, end to end; its lifecycle runs with the definition it groups in
//! `definition.rs`.

use crate::definition::config;
use crate::harness::{Emulator, Workspace};

#[test]
fn initiative_rejects_undeclared_parameters_at_plan() {
    let emulator = Emulator::start();
    let ws = Workspace::new(&emulator);
    ws.write_config(&config("x", "y").replace(
        r#"parameters           = jsonencode({ effect = "[parameters('effect')]" })"#,
        r#"parameters           = jsonencode({ effect = "[parameters('missing')]" })"#,
    ));
    let out = ws.validate().combined();
    assert!(out.contains("Undeclared initiative parameter"), "{out}");
}
