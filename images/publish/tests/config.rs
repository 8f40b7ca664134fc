//! The example configuration parses, and unknown keys are refused.

use cdvm_publish::PublishConfig;

#[test]
fn the_example_config_parses() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("publish.example.yaml");
    let config = PublishConfig::load(&path).expect("example parses");
    assert_eq!(config.aws.expect("aws").region, "eu-west-1");
    assert_eq!(config.gcp.expect("gcp").bucket, "my-project-cdvm-images");
    assert_eq!(config.azure.expect("azure").gallery, "cdvm_gallery");
}

#[test]
fn unknown_keys_are_refused() {
    let err = serde_yaml_ng::from_str::<PublishConfig>("aws:\n  region: x\n  regoin: y\n")
        .expect_err("typo refused");
    assert!(err.to_string().contains("regoin"), "{err}");
}
