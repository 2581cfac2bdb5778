# Rules of the corruption stage (softlabels.evaluate.corruptions; thesis §5.2, chapter-5 corruption CE).
#   results/data/cifar10c_holdout_s{severity}.npz
#       the 3000 hold-out images (splits.npz `test`, in that order) under each configured CIFAR-10-C
#       corruption: one uint8 [3000,32,32,3] array per corruption name + `indices` (CIFAR-10 test indices).
#       evaluation.corruption.source = generate (default): made offline with the CIFAR parameters of
#       make_cifar_c.py and the frost overlays; = download: the published rows, read from the CIFAR-10-C tar.
#   resources/cifar-10-c/CIFAR-10-C.tar     (source: download only) Zenodo record 2535967, checksum-pinned

CORRUPTION = config["evaluation"]["corruption"]
CORRUPTED_HOLDOUT = f"results/data/cifar10c_holdout_s{CORRUPTION['severity']}.npz"
CIFAR10C_TAR = os.path.join(RESOURCES, CORRUPTION["cifar10c"]["file"])

_unknown_overlays = [key for key in CORRUPTION["frost_overlays"] if key not in config["sources"]]
if _unknown_overlays:
    raise ValueError(
        f"key 'evaluation.corruption.frost_overlays': '{_unknown_overlays[0]}' is not defined under 'sources'"
    )

# The chapter-5 tables depend on these (they are not final targets by themselves).
CORRUPTION_OUTPUTS = [CORRUPTED_HOLDOUT]


# What the build reads besides the hold-out: the CIFAR-10-C tar (source: download) or the frost overlays
# (source: generate).
if CORRUPTION["source"] == "download":
    CORRUPTION_SOURCE = {"cifar10c": CIFAR10C_TAR}
    CORRUPTION_SOURCE_ARGS = f"--cifar10c {CIFAR10C_TAR}"
else:
    CORRUPTION_SOURCE = {"frost": [resource(key) for key in CORRUPTION["frost_overlays"]]}
    CORRUPTION_SOURCE_ARGS = "--frost " + " ".join(CORRUPTION_SOURCE["frost"])


rule fetch_cifar10c:
    output:
        CIFAR10C_TAR,
    log:
        "logs/corruption/fetch_cifar10c.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=500,
        runtime=240,
    params:
        settings=settings("evaluation.corruption.cifar10c"),
        run_options=run_options(),
    shell:
        "softlabels corrupt download --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"


rule corrupt_holdout:
    input:
        **CORRUPTION_SOURCE,
        test_images="results/data/cifar10_test.npz",
        splits="results/data/splits.npz",
    output:
        CORRUPTED_HOLDOUT,
    log:
        "logs/corruption/corrupt_holdout.log",
    conda:
        "../../envs/softlabels.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        source_args=CORRUPTION_SOURCE_ARGS,
        settings=settings(
            "evaluation.corruption.severity",
            "evaluation.corruption.corruptions",
            "evaluation.corruption.source",
            "evaluation.corruption.seed",
            "evaluation.cifar10h_holdout_limit",
        ),
        run_options=run_options(),
    shell:
        "softlabels corrupt build --test-images {input.test_images} --splits {input.splits} "
        "{params.source_args} --output {output} --settings {params.settings:q} --run-options {params.run_options:q} > {log} 2>&1"
