//! The TDX quote parser: every TDX quote fixture parses to the field values recorded in
//! `tests/fixtures/tdx/SOURCES.md`, and no input — truncated, corrupted, lying lengths — makes
//! it panic or read out of bounds.
#![allow(clippy::unwrap_used)]

mod tdx_support;

use cdvm_attestation::tdx::{claimed_mrtd, TdReportKind, TdxError, TdxQuote};
use cdvm_attestation::Measurement;
use tdx_support::{evidence, fixture, DCAP_QUOTE, SPR_QUOTE, V5_QUOTE};

struct Expect {
    file: &'static str,
    len: usize,
    version: u16,
    kind: TdReportKind,
    tee_tcb_svn: &'static str,
    td_attributes: &'static str,
    debug: bool,
    xfam: &'static str,
    mrtd: &'static str,
    rtmr: [&'static str; 4],
    report_data: &'static str,
}

/// Every TDX quote of the shared fixture set, with the values its SOURCES.md lists.
const ALL: &[Expect] = &[
    Expect {
        file: "gotdxguest/tdx_prod_quote_SPR_E4.dat",
        len: 4974,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "03000400000000000000000000000000",
        td_attributes: "0000004000000000",
        debug: false,
        xfam: "e71a060000000000",
        mrtd: "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb",
        rtmr: [
            "2927da70461cd63266f43230cc1849c03ef25ebe490062a801d8fcc80af42976823adf08f833c1e50b51779c6593f32a",
            "2c700b8ba9b85783f8be9fb9443647bdc0bb3c50747f06297cc6538c25a5f589c4b56d035c59107c6bc5800db2cacb61",
            "8652f0caaba7e215ea442dc36a4499d8fec3362f3a0b2ca151cbe4b3e6466fe59c7368b3c2287fc7c3bf5c924eb4424e",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dacead6f0c87a6d766c66f6f29f8acb281f1113",
    },
    Expect {
        file: "gotdxguest/quote_v5_sample.dat",
        len: 5006,
        version: 5,
        kind: TdReportKind::Td15,
        tee_tcb_svn: "0b010400000000000000000000000000",
        td_attributes: "0000001000000000",
        debug: false,
        xfam: "e702060000000000",
        mrtd: "7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f876",
        rtmr: [
            "5c8daf76063a71ac8fcef4067564661fc682ed7944c7a5d21dbbced02f61ceff4ba0678c6aef3bdae8cbc614cec24619",
            "463acaace1b6e97c76e92e41fe312aa66f3fd4dad60ec7acf169859db0343e3d1e591646795cdc80fbc0ca5f7041d253",
            "6369b9c9a3b791ebcbdc5a0bb9536cfb57f50df2b393b33c8b29616d3568baa61f4b59dc6092e31ea8764bcbdfc69f20",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "945eaacf5abc1f719d8666a942fda03d1edcb4490277396093dc5a5289ab9f1e094aed63060cd4a4933a4dd537ed1255c9c79ecb3ed82cd1b486233e31c25c3a",
    },
    Expect {
        file: "gotdxguest/cos-113-tdx-quote.dat",
        len: 8000,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "04010700000000000000000000000000",
        td_attributes: "0000001000000000",
        debug: false,
        xfam: "e700060000000000",
        mrtd: "dae67181d3d65e073ad8f95b7907d5e927bfe9761c9ff3e9b89734a45d8954dba41394c7717cb2735396c1d04231f94a",
        rtmr: [
            "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6",
            "f62dbc072bd5d3f3438b7b35c39a727f5aea2ffc2473f43723953f530daf62504f0a7944aa62c41a86e8a878c2b122c1",
            "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    },
    Expect {
        file: "dcapqvl/tdx_quote",
        len: 5006,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "06010300000000000000000000000000",
        td_attributes: "0000001000000000",
        debug: false,
        xfam: "e702060000000000",
        mrtd: "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7",
        rtmr: [
            "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0",
            "0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7aea8c323c173019b3093d54e579e9378",
            "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d7330733642e01d48c3132",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20",
    },
    Expect {
        file: "dcapqvl/tdx_quote_outdated",
        len: 5006,
        version: 5,
        kind: TdReportKind::Td15,
        tee_tcb_svn: "07010300000000000000000000000000",
        td_attributes: "0000001000000000",
        debug: false,
        xfam: "e718060000000000",
        mrtd: "273828c46252fcbdd8ad2dd907130222b03466d52a2911d70c1a5950895d6bd1ae451d382d5a9b1b4c0ed0e5ae9a3dbd",
        rtmr: [
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "d2142b643598eb5fae2bc8529dd79a558b29f868ccbb6531cb28dab9dce477280000000000000000000000000000000000000000000000000000000000000000",
    },
    Expect {
        file: "dcapqvl/tdx-quote.hex.derived.bin",
        len: 5006,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "05010200000000000000000000000000",
        td_attributes: "0000001000000000",
        debug: false,
        xfam: "e702060000000000",
        mrtd: "7ba9e262ce6979087e34632603f354dd8f8a870f5947d116af8114db6c9d0d74c48bec4280e5b4f4a37025a10905bb29",
        rtmr: [
            "4574c098915caf3e82057817dbd135c1ed0ee1b39ac300c921479e2f5ebf5726a13ee0c8745ac891b6aee7c4f9664610",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "547fcba4630bfb981169a8a1903b79c244933413409dd0387acbd8e3b985bcc9164cf52735cd31f60bf2c5d1220c113f",
        ],
        report_data: "7148f47ef58b475fce69b386e2d6b4c964a9533cc328ea8e544db66612a5174698d006951cefa8fd4450e884300638e567e22f9a012ef5754aa6a9d9564fcd8a",
    },
    Expect {
        file: "dcapqvl/quote-from-tappd.hex.derived.bin",
        len: 5006,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "05010200000000000000000000000000",
        td_attributes: "0000001000000000",
        debug: false,
        xfam: "e702060000000000",
        mrtd: "c68518a0ebb42136c12b2275164f8c72f25fa9a34392228687ed6e9caeb9c0f1dbd895e9cf475121c029dc47e70e91fd",
        rtmr: [
            "274c2344116db7c663470693b5ba62b8621eac28cb41d2f816ddf188f9f423f900a1c44d32386fd3c993dc814e62af9d",
            "918fbd97108e05450afa6aca140c6363ab913578b66cc312e3e8542ce5ade455a30c8d9e4d53a5e43d81955f76140279",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "a2d25bc888a93009af5b70eadb410e9071d18387e4db39aae20fe767f5c4279d95e6519c5d797938a90694599c5bea7a",
        ],
        report_data: "7668c6b4eafb62301c72714ecc7d90ce9a0e04b52dc117720df2047b0a59f1dbd937243eef1410a3cdc524aad66d4554b4f18b54da2fc0608dac40d6dea5f1d4",
    },
    Expect {
        file: "trustee/tdx_quote_4.dat",
        len: 4936,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "03000500000000000000000000000000",
        td_attributes: "0100001000000000",
        debug: true,
        xfam: "e742060000000000",
        mrtd: "705ee9381b8633a9fbe532b52345e8433343d2868959f57889d84ca377c395b689cac1599ccea1b7d420483a9ce5f031",
        rtmr: [
            "e940da7c2712d2790e2961e00484f4fa8e6f9eed71361655ae22699476b14f9e63867eb41edd4b480fef0c59f496b288",
            "559cfcf42716ed6c40a48a73d5acb7da255435012f0a9f00fbe8c1c57612ede486a5684c4c9ff3ddf52315fcdca3a596",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "7c71fe2c86eff65a7cf8dbc22b3275689fd0464a267baced1bf94fc1324656aeb755da3d44d098c0c87382f3a5f85b45c8a28fee1d3bdb38342bf96671501429",
    },
    Expect {
        file: "trustee/tdx_quote_5.dat",
        len: 5006,
        version: 5,
        kind: TdReportKind::Td15,
        tee_tcb_svn: "05010200000000000000000000000000",
        td_attributes: "0000001000000000",
        debug: false,
        xfam: "e742060000000000",
        mrtd: "dfba221b48a22af8511542ee796603f37382800840dcd978703909bf8e64d4c8a1e9de86e7c9638bfcba422f3886400a",
        rtmr: [
            "9b529f3689e2e8ebb899e9abbbc3dab394d6545e8cdb28a2abb9cc2f377b83a65c01ba56b824cd3ee885df20051f5128",
            "ca5a979317ffe8a527a3b7aadab03976d7cb6eef1041fb9bd9d69e6fafa7252cdc10e4c2a55e7ecbd2ddb5cacc867430",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "6d6ab13b046cff606ac0074be13981b07b6325dba10b5facc96febf551c0c3be2b75f92fe1f88f4bb996969ad0174b4b7a70261b7b85c844f4b33a4674fd049f",
    },
    Expect {
        file: "trustee/tdx_quote_6.dat",
        len: 5006,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "05030200000000000000000000000000",
        td_attributes: "0000001000000000",
        debug: false,
        xfam: "e702060000000000",
        mrtd: "21e8dead92d6c69d7cbba79816686c03a48485c7df0c11f6f04792d5e1d378f6b8c46615ba6946adccac6becffbb1e88",
        rtmr: [
            "395aefe7bac15b24c40f1cd7ba6f8fa48732be5c56c61485ed3cd9c8b16cce8ece64c331b99ce36d96605135c753aaa2",
            "fc4b0f849d8d76fdf1da563a8c29d0d456b484a65e01797baf52ea1d8c002040527a1f0278925077219656dba039429f",
            "193edd321148e81fd4d6ce00ac8331e737febdb428f18ae66f697c1d2a7f2cd97c535c8df9f045f62b16a41facad84a1",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "26cae1c77185617fb6a03fc29bf1f924596e52352b9b7594940b576ae126cd4a570cc3202a900c5d19a6eb0a95b32cfd00000000000000000000000000000000",
    },
    Expect {
        file: "trustee_az_tdx_vtpm/td-quote.bin",
        len: 5006,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "02010600000000000000000000000000",
        td_attributes: "0000000000000000",
        debug: false,
        xfam: "e718060000000000",
        mrtd: "024a32b070383331181619fa387cb4d55d1e38879f989933055ccad5bc2db795d1737b66205949d15469dc8c1ba7ab7b",
        rtmr: [
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "9734504f161d104c74e3165c15f779b06a9bb40dfa71937817d7eee68e5938390000000000000000000000000000000000000000000000000000000000000000",
    },
    Expect {
        file: "teekit/tdx-v4-azure.derived.bin",
        len: 5010,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "04010700000000000000000000000000",
        td_attributes: "0000000000000000",
        debug: false,
        xfam: "e718060000000000",
        mrtd: "fe27b2aa3a05ec56864c308aff03dd13c189a6112d21e417ec1afe626a8cb9d91482d1379ec02fe6308972950a930d0a",
        rtmr: [
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "675b293e4e395b2bfbfb27a1754f5ca1fdca87e1949b3bc4d8ca39a8be195afe0000000000000000000000000000000000000000000000000000000000000000",
    },
    Expect {
        file: "teekit/tdx-v4-gcp.quote.derived.bin",
        len: 8000,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "08010800000000000000000000000000",
        td_attributes: "0000001000000000",
        debug: false,
        xfam: "e700060000000000",
        mrtd: "409c0cd3e63d9ea54d817cf851983a220131262664ac8cd02cc6a2e19fd291d2fdd0cc035d7789b982a43a92a4424c99",
        rtmr: [
            "9d112d1d2c2546d904629cfad72ccfa0096be6b040ea2eec7a0673827633ebdcd7f89c2c355dd6dd4fa811ce0f442d3a",
            "349c9f4827767091eb5c5efdcea78dca9161a41e5b456b707db39b026273723f63540aadc124124d6f0134030ebedabb",
            "2a514f6213e05aeac690ea1a4275cdef2af6277d688ff436d0ff7efaf47dc4a4f62a5d91cd2bf5f91838744069d1a0b8",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "806dfeec9d10c22a60b12751216d75fb358d83088ea72dd07eb49c84de24b8a49d483085c4350e545689955bdd10e1d8b55ef7c6d288a17032acece698e35db8",
    },
    Expect {
        file: "teekit/tdx-v4-gcp-no-nonce.quote.derived.bin",
        len: 8000,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "08010800000000000000000000000000",
        td_attributes: "0000001000000000",
        debug: false,
        xfam: "e700060000000000",
        mrtd: "409c0cd3e63d9ea54d817cf851983a220131262664ac8cd02cc6a2e19fd291d2fdd0cc035d7789b982a43a92a4424c99",
        rtmr: [
            "9d112d1d2c2546d904629cfad72ccfa0096be6b040ea2eec7a0673827633ebdcd7f89c2c355dd6dd4fa811ce0f442d3a",
            "349c9f4827767091eb5c5efdcea78dca9161a41e5b456b707db39b026273723f63540aadc124124d6f0134030ebedabb",
            "2a514f6213e05aeac690ea1a4275cdef2af6277d688ff436d0ff7efaf47dc4a4f62a5d91cd2bf5f91838744069d1a0b8",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
    },
    Expect {
        file: "teekit/tdx-v4-edgeless.dat",
        len: 4936,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "03000500000000000000000000000000",
        td_attributes: "0000001000000000",
        debug: false,
        xfam: "e702060000000000",
        mrtd: "b65ea009e424e6f761fdd3d7c8962439453b37ecdf62da04f7bc5d327686bb8bafc8a5d24a9c31cee60e4aba87c2f71b",
        rtmr: [
            "e1af75e61927410e42b54b39f6681cf9b0bfbae512b15e870e4c8d9d5a5cb385571b0e1dc2f70bf9ccef08560f0a2b58",
            "215ff1fc0c31442c1f061a317be40940b182c13d43c6db2e5b2a577dde9bee93d452afd3dd46c6e12f9b303912f310b1",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "48656c6c6f2066726f6d20456467656c6573732053797374656d7321000000000000000000000000000000000000000000000000000000000000000000000000",
    },
    Expect {
        file: "teekit/tdx-v4-moemahhouk.dat",
        len: 5006,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "04010200000000000000000000000000",
        td_attributes: "0000001000000080",
        debug: false,
        xfam: "e702060000000000",
        mrtd: "f2dd2696f69b950645832bdc095ffd11247eeff687eeacdb57a58d2ddb9a9f94fea40c961e19460c00ffa31420ecbc18",
        rtmr: [
            "0998204508d58dcbfebe5e11c48669f7a921ac2da744dfb7d014ecdff2acdff1c9f665fdad52aadacf296a1df9909eb2",
            "383d100224f1716aeb431f7cb3cf028197dbd872487f27b0f6329ab17647dc9953c7014109818634f879e6550bc60f93",
            "eecfc42ff4d49278bfdbb0c77e570f4490cff10a2ee1ac11fbd2c2b49fa6cfa3cf1a1cb755c72522dd8a689e9d47906a",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "278e753482976c8a7351fe2113609c7350d491cdae3d449eefc202fa41b2ad6840239cc2ba084c2d594b4e6dabeae0fcbf71c96daf0d0c9ecf0e9810c0457900",
    },
    Expect {
        file: "teekit/tdx-v4-zkdcap.dat",
        len: 8000,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "04010700000000000000000000000000",
        td_attributes: "0000001000000000",
        debug: false,
        xfam: "e700060000000000",
        mrtd: "935be7742dd89c6a4df6dba8353d89041ae0f052beef993b1e7f4524d3bc57650df20e5582158352e1240b3f1fed55d8",
        rtmr: [
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    },
    Expect {
        file: "intel_qvl_synthetic_via_teekit/quote.dat",
        len: 3696,
        version: 4,
        kind: TdReportKind::Td10,
        tee_tcb_svn: "52c1a38cf7edf30a524b4ebb049f59c7",
        td_attributes: "0000000000000000",
        debug: false,
        xfam: "0000000000000000",
        mrtd: "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        rtmr: [
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ],
        report_data: "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    },
];

#[test]
fn every_tdx_fixture_parses_to_its_recorded_fields() {
    for e in ALL {
        let bytes = fixture(e.file);
        assert_eq!(bytes.len(), e.len, "{}", e.file);
        let q = TdxQuote::parse(&bytes).unwrap_or_else(|err| panic!("{}: {err}", e.file));
        let r = &q.report;
        assert_eq!(q.header.version, e.version, "{}", e.file);
        assert_eq!(q.header.tee_type, 0x81, "{}", e.file);
        assert_eq!(q.header.attestation_key_type, 2, "{}", e.file);
        assert_eq!(r.kind, e.kind, "{}", e.file);
        assert_eq!(hex::encode(r.tee_tcb_svn), e.tee_tcb_svn, "{}", e.file);
        assert_eq!(
            hex::encode(r.td_attributes.0),
            e.td_attributes,
            "{}",
            e.file
        );
        assert_eq!(r.td_attributes.debug(), e.debug, "{}", e.file);
        assert_eq!(hex::encode(r.xfam), e.xfam, "{}", e.file);
        assert_eq!(r.mrtd.to_string(), e.mrtd, "{}", e.file);
        for (i, want) in e.rtmr.iter().enumerate() {
            assert_eq!(r.rtmr[i].to_string(), *want, "{} RTMR{i}", e.file);
        }
        assert_eq!(r.report_data.to_string(), e.report_data, "{}", e.file);
        assert_eq!(
            (r.tee_tcb_svn2.is_some(), r.mrservicetd.is_some()),
            (e.kind == TdReportKind::Td15, e.kind == TdReportKind::Td15),
            "{}",
            e.file
        );
        let body = match e.kind {
            TdReportKind::Td10 if e.version == 4 => 584,
            TdReportKind::Td10 => 6 + 584,
            TdReportKind::Td15 => 6 + 648,
        };
        assert_eq!(q.signed_len, 48 + body, "{}", e.file);
        assert_eq!(q.signature.pck_cert_data_type, 5, "{}", e.file);
        assert_eq!(q.signature.qe_report.len(), 384, "{}", e.file);
        // The claimed (unverified) measurement is the MRTD.
        let mrtd = Measurement::from_hex(e.mrtd).unwrap();
        assert_eq!(claimed_mrtd(&bytes), Some(mrtd), "{}", e.file);
        assert_eq!(evidence(bytes).claimed_measurement(), Some(mrtd));
    }
}

#[test]
fn tdx_1_5_fields_are_read() {
    let q = TdxQuote::parse(&fixture(V5_QUOTE)).unwrap();
    assert_eq!(
        hex::encode(q.report.tee_tcb_svn2.unwrap()),
        "0d010400000000000000000000000000"
    );
    assert_eq!(q.report.mrservicetd, Some(Measurement([0; 48])));
    let q = TdxQuote::parse(&fixture("trustee/tdx_quote_5.dat")).unwrap();
    assert_eq!(
        q.report.mrservicetd.unwrap().to_string(),
        "383c87d3bbb047b2d171eaca95312ede99f258088dc788f6ae2ccf8b6dd848fe8d47629e08b3f6cbd4a00dd47a5a033d"
    );
}

#[test]
fn trailing_padding_after_the_signature_data_is_ignored() {
    // go-tdx-guest's SPR quote has 39 bytes after its signature data, GCP's 3065.
    assert_eq!(
        TdxQuote::parse(&fixture(SPR_QUOTE)).unwrap().trailing_len,
        39
    );
    let gcp = TdxQuote::parse(&fixture("teekit/tdx-v4-gcp.quote.derived.bin")).unwrap();
    assert_eq!(gcp.trailing_len, 3065);
}

#[test]
fn sgx_quotes_are_not_tdx_quotes() {
    assert!(matches!(
        TdxQuote::parse(&fixture("dcapqvl/sgx_quote")),
        Err(TdxError::Unsupported(m)) if m.contains("SGX")
    ));
    assert_eq!(claimed_mrtd(&fixture("dcapqvl/sgx_quote")), None);
}

#[test]
fn header_fields_are_checked() {
    let base = fixture(DCAP_QUOTE);
    // version 3 with a TDX tee type (go-tdx-guest negative case [0x00]=3), version 6.
    for version in [3u8, 6] {
        let mut q = base.clone();
        q[0] = version;
        assert!(
            matches!(TdxQuote::parse(&q), Err(TdxError::Unsupported(m)) if m.contains("version")),
            "version {version}"
        );
    }
    // attestation key type 3 (P-384) is not used by TDX quotes.
    let mut q = base.clone();
    q[2] = 3;
    assert!(matches!(TdxQuote::parse(&q), Err(TdxError::Unsupported(_))));
    // An unknown tee type.
    let mut q = base;
    q[4] = 0x82;
    assert!(matches!(TdxQuote::parse(&q), Err(TdxError::Unsupported(_))));
}

#[test]
fn v5_body_type_and_size_are_checked() {
    let base = fixture(V5_QUOTE);
    let mut q = base.clone();
    q[48] = 4; // TDX 1.5ex body type
    assert!(matches!(TdxQuote::parse(&q), Err(TdxError::Unsupported(_))));
    let mut q = base.clone();
    q[48] = 9;
    assert!(matches!(TdxQuote::parse(&q), Err(TdxError::Unsupported(_))));
    let mut q = base;
    q[50] = 0x49; // size 585 for body type 3
    assert!(matches!(TdxQuote::parse(&q), Err(TdxError::Malformed(_))));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for file in [DCAP_QUOTE, V5_QUOTE] {
        let bytes = fixture(file);
        let parsed = TdxQuote::parse(&bytes).unwrap();
        // The signature data ends where the trailing padding begins.
        let end = bytes.len() - parsed.trailing_len;
        for len in 0..bytes.len() {
            let result = TdxQuote::parse(&bytes[..len]);
            assert_eq!(
                result.is_ok(),
                len >= end,
                "{file} cut at {len} (data ends at {end})"
            );
        }
    }
}

#[test]
fn lying_length_fields_are_errors() {
    let base = fixture(DCAP_QUOTE);
    // signature data length (u32 at 632), certification data size (u32 at 636+130),
    // QE auth data size (u16 at 636+134+448), PCK chain size (u32 after the auth data).
    let auth = 636 + 134 + 448;
    let pck = auth + 2 + 32 + 2;
    for (offset, width) in [(632usize, 4usize), (766, 4), (auth, 2), (pck, 4)] {
        for value in [0u8, 0x7F, 0xFF] {
            let mut q = base.clone();
            q[offset..offset + width].fill(value);
            assert!(
                matches!(TdxQuote::parse(&q), Err(TdxError::Malformed(_))),
                "length at {offset} filled with {value:#x}"
            );
        }
    }
    // go-tdx-guest negative case [0x278]=0x10: the signature data length no longer covers the
    // certification data.
    let mut q = fixture(SPR_QUOTE);
    q[0x278] = 0x10;
    assert!(matches!(TdxQuote::parse(&q), Err(TdxError::Malformed(_))));
}

#[test]
fn corrupted_quotes_never_panic() {
    // A deterministic xorshift over many single- and multi-byte corruptions of real quotes.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for file in [DCAP_QUOTE, V5_QUOTE, SPR_QUOTE] {
        let base = fixture(file);
        for _ in 0..3000 {
            let mut q = base.clone();
            let edits = 1 + (next() % 4) as usize;
            for _ in 0..edits {
                let i = (next() % q.len() as u64) as usize;
                q[i] = next() as u8;
            }
            if next() % 5 == 0 {
                let cut = (next() % q.len() as u64) as usize;
                q.truncate(cut);
            }
            let _ = TdxQuote::parse(&q);
            let _ = claimed_mrtd(&q);
        }
    }
    // Arbitrary short inputs.
    for len in 0..700 {
        let q: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = TdxQuote::parse(&q);
    }
}
