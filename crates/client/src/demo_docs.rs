//! The private documents `cdvm demo --job rag` asks about: the bundled, invented corpus of
//! examples/rag-docs (a fictional sensor company's contracts, policies, minutes and memos; see
//! examples/rag-docs.SOURCES.md), compiled into the binary so the demo needs no checkout.

/// (file name, contents) of every document, in name order.
pub const DOCUMENTS: &[(&str, &str)] = &[
    (
        "contract-brasko-security.txt",
        include_str!("../../../examples/rag-docs/contract-brasko-security.txt"),
    ),
    (
        "contract-ironleaf-cleaning.txt",
        include_str!("../../../examples/rag-docs/contract-ironleaf-cleaning.txt"),
    ),
    (
        "contract-marrowfield-it-support.txt",
        include_str!("../../../examples/rag-docs/contract-marrowfield-it-support.txt"),
    ),
    (
        "contract-okafor-print-services.html",
        include_str!("../../../examples/rag-docs/contract-okafor-print-services.html"),
    ),
    (
        "contract-pellucid-cloud-hosting.md",
        include_str!("../../../examples/rag-docs/contract-pellucid-cloud-hosting.md"),
    ),
    (
        "contract-quillmere-freight.txt",
        include_str!("../../../examples/rag-docs/contract-quillmere-freight.txt"),
    ),
    (
        "contract-saltmarsh-catering.txt",
        include_str!("../../../examples/rag-docs/contract-saltmarsh-catering.txt"),
    ),
    (
        "contract-tidewell-translation.txt",
        include_str!("../../../examples/rag-docs/contract-tidewell-translation.txt"),
    ),
    (
        "hr-gifts-and-hospitality-policy.txt",
        include_str!("../../../examples/rag-docs/hr-gifts-and-hospitality-policy.txt"),
    ),
    (
        "hr-parental-leave-policy.txt",
        include_str!("../../../examples/rag-docs/hr-parental-leave-policy.txt"),
    ),
    (
        "hr-remote-work-policy.md",
        include_str!("../../../examples/rag-docs/hr-remote-work-policy.md"),
    ),
    (
        "hr-sick-leave-policy.txt",
        include_str!("../../../examples/rag-docs/hr-sick-leave-policy.txt"),
    ),
    (
        "incident-report-2024-03-database-outage.txt",
        include_str!("../../../examples/rag-docs/incident-report-2024-03-database-outage.txt"),
    ),
    (
        "it-access-control-policy.md",
        include_str!("../../../examples/rag-docs/it-access-control-policy.md"),
    ),
    (
        "lease-harbour-street-office.txt",
        include_str!("../../../examples/rag-docs/lease-harbour-street-office.txt"),
    ),
    (
        "meeting-minutes-2024-09-board.txt",
        include_str!("../../../examples/rag-docs/meeting-minutes-2024-09-board.txt"),
    ),
    (
        "product-spec-helix-sensor.md",
        include_str!("../../../examples/rag-docs/product-spec-helix-sensor.md"),
    ),
    (
        "rd-memo-graphene-coating.txt",
        include_str!("../../../examples/rag-docs/rd-memo-graphene-coating.txt"),
    ),
    (
        "training-budget-policy.txt",
        include_str!("../../../examples/rag-docs/training-budget-policy.txt"),
    ),
    (
        "travel-policy.html",
        include_str!("../../../examples/rag-docs/travel-policy.html"),
    ),
];

/// The demo's default question; its answer (Tartu) is in exactly one document.
pub const QUESTION: &str = "In which city did the board decide to open the new engineering office?";

/// The fact the default question's answer contains (checked, and reported, by the demo).
pub const FACT: &str = "Tartu";

/// Writes the documents into `dir` (created), for upload as a folder.
pub fn write(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in DOCUMENTS {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}
