"""Facts of the AC benchmark releases (VELM paper, arXiv 2505.02626): which test images each one holds.

Derived once from the manifests of the authors' public release (MIT licence),
``../shared/data/ac/*_manifest.csv``; tests/test_ac_release.py checks every fact
here against those manifests when they are present. Display names and class
descriptions live in ``prompts/classes/<benchmark>.toml``; this module only says
which files make up each test set, so a data root can be checked file by file
and imported predictions can be scored without any image.

Test images live at ``<category>/test/<class folder>/<file>``; ``good`` is the
folder of normal images.
"""

#: The original MVTec AD test images the release leaves out (relative paths). A full MVTec AD
#: download has them; they are skipped (and noted in the run), not reported as extra files.
MVTEC_AD_LEFT_OUT: tuple[str, ...] = ("cable/test/good/020.png",)

#: Class keys in the release's class map that differ from its folder names (category -> key -> folder).
#: Folder names are the truth; these keys are accepted as names of the folder's class.
VISA_AC_CLASS_ALIASES: dict[str, dict[str, str]] = {
    "cashew": {"small-hole": "small-holes"},
    "macaroni1": {
        "middle-breakage-small-scratches": "middle-breakage_small-scratches",
        "similar-colour-spots": "similar-colour-spot",
    },
}

#: Where a VisA-AC image lies in the original VisA tree: ``<category>/Data/Images/<Normal|Anomaly>/<file>``
#: (the same file name), and its mask at ``<category>/Data/Masks/Anomaly/<stem>.png``.
VISA_ORIGINAL_IMAGES = "{category}/Data/Images/{kind}/{file}"
VISA_ORIGINAL_MASKS = "{category}/Data/Masks/Anomaly/{stem}.png"

#: MVTec-AC: category -> test class folder -> N; the folder holds 000.png .. N-1 (three digits).
MVTEC_AC_FILES: dict[str, dict[str, int]] = {
    "bottle": {"broken_large": 24, "broken_small": 18, "contamination": 21, "good": 20},
    "cable": {"bent_wire": 13, "cable_swap": 12, "cut_inner_insulation": 14, "cut_outer_insulation": 10, "good": 58,
        "missing_cable": 12, "missing_wire": 10, "poke_insulation": 10},
    "capsule": {"crack": 35, "faulty_imprint": 22, "good": 23, "scratch": 19, "squeeze": 20},
    "carpet": {"color": 19, "cut": 34, "good": 28, "metal_contamination": 17, "thread": 19},
    "grid": {"bent": 10, "broken": 14, "glue": 11, "good": 21, "metal_contamination": 11, "thread": 11},
    "hazelnut": {"crack": 19, "cut": 16, "good": 40, "hole": 18, "print": 17},
    "leather": {"color": 19, "cut": 19, "fold": 17, "glue": 19, "good": 32, "poke": 18},
    "metal_nut": {"bent": 25, "color": 22, "flip": 23, "good": 22, "scratch": 22},
    "pill": {"color": 24, "contamination": 18, "crack": 25, "faulty_imprint": 19, "good": 26, "pill_type": 9,
        "scratch": 23},
    "screw": {"good": 41, "manipulated_front": 24, "scratch_head": 24, "scratch_neck": 25, "scratch_thread": 35},
    "tile": {"crack": 17, "glue_strip": 18, "good": 33, "gray_stroke": 16, "oil": 18, "rough": 15},
    "transistor": {"bent_lead": 10, "cut_lead": 10, "damaged_case": 10, "good": 60, "misplaced": 10},
    "wood": {"color": 8, "good": 19, "hole": 10, "liquid": 10, "scratch": 21},
    "zipper": {"broken_teeth": 36, "fabric_border": 17, "fabric_interior": 16, "good": 32, "split_teeth": 18,
        "squeezed_teeth": 16},
}

#: MVTec-AD (the original test set): as for MVTec-AC, less `MVTEC_AD_LEFT_OUT`.
MVTEC_AD_FILES: dict[str, dict[str, int]] = {
    "bottle": {"broken_large": 20, "broken_small": 22, "contamination": 21, "good": 20},
    "cable": {"bent_wire": 13, "cable_swap": 12, "combined": 11, "cut_inner_insulation": 14, "cut_outer_insulation":
        10, "good": 58, "missing_cable": 12, "missing_wire": 10, "poke_insulation": 10},
    "capsule": {"crack": 23, "faulty_imprint": 22, "good": 23, "poke": 21, "scratch": 23, "squeeze": 20},
    "carpet": {"color": 19, "cut": 17, "good": 28, "hole": 17, "metal_contamination": 17, "thread": 19},
    "grid": {"bent": 12, "broken": 12, "glue": 11, "good": 21, "metal_contamination": 11, "thread": 11},
    "hazelnut": {"crack": 18, "cut": 17, "good": 40, "hole": 18, "print": 17},
    "leather": {"color": 19, "cut": 19, "fold": 17, "glue": 19, "good": 32, "poke": 18},
    "metal_nut": {"bent": 25, "color": 22, "flip": 23, "good": 22, "scratch": 23},
    "pill": {"color": 25, "combined": 17, "contamination": 21, "crack": 26, "faulty_imprint": 19, "good": 26,
        "pill_type": 9, "scratch": 24},
    "screw": {"good": 41, "manipulated_front": 24, "scratch_head": 24, "scratch_neck": 25, "thread_side": 23,
        "thread_top": 23},
    "tile": {"crack": 17, "glue_strip": 18, "good": 33, "gray_stroke": 16, "oil": 18, "rough": 15},
    "toothbrush": {"defective": 30, "good": 12},
    "transistor": {"bent_lead": 10, "cut_lead": 10, "damaged_case": 10, "good": 60, "misplaced": 10},
    "wood": {"color": 8, "combined": 11, "good": 19, "hole": 10, "liquid": 10, "scratch": 21},
    "zipper": {"broken_teeth": 19, "combined": 16, "fabric_border": 17, "fabric_interior": 16, "good": 32, "rough": 17,
        "split_teeth": 18, "squeezed_teeth": 16},
}

#: VisA-AC: category -> test class folder -> file stems (``A-B`` is every stem from A to B at A's width);
#: every file is ``<stem>.JPG``. Stems are VisA's own file names, so they are not contiguous.
VISA_AC_FILES: dict[str, dict[str, str]] = {
    "candle": {
        "chunk-of-wax-missing": "000-004 007-009 055 087",
        "damaged-corner-of-packaging": "010-016 018-029",
        "different-colour-spot": "040-043 045-049 051-052 054 057-059",
        "foreign-particals-on-candle": "071-080 083-084",
        "good": (
            "0011 0013 0016 0024 0026-0027 0046 0100 0107 0159 0168 0170 0172 0174 0178 0187 0196 0208 0214-0215 "
            "0237 0261 0286 0294 0297 0303 0306 0320 0333 0363 0377 0394 0400 0402 0417 0423 0427 0457 0469 0479 "
            "0483-0484 0488 0490 0514 0518 0520 0525 0545 0552 0569 0615 0617 0619 0621 0629 0631 0648 0654 0657 "
            "0659 0674 0684-0685 0688 0690 0694 0705 0725 0730 0735 0739 0751 0755 0764 0768 0779 0784 0790 "
            "0796-0797 0800 0804 0811 0844 0869 0871 0892 0900 0920 0923 0935 0952-0953 0964 0967 0974 0985 0994 "
            "0996"
        ),
        "wax-melded-out-of-the-candle": "085-086 088-091 093-099",
    },
    "capsules": {
        "bubble": "000-029",
        "bubble-discolor": "030-044",
        "bubble-discolor-scratch": "085-099",
        "bubble-discolor-scratch-leak": "045-084",
        "good": (
            "011 013 016 024 026-027 046 062 100 107 152 159 168 170 172 174 178-179 187 196 208 214-215 237 240 "
            "261 286 288 294 297 303 306 320 324 333 363 377 394 400 402 417 423 427 457 469 479 483-484 488 490 "
            "514 518 520 525 545 552 569 576 580 594"
        ),
    },
    "cashew": {
        "burnt": "001 003-008 010-011 052",
        "corner-or-edge-breakage": "012-024",
        "good": (
            "006 012-013 023 050 084 087 089 093 098 104 130 143 148 166 181 213 228 239 244-245 260 272 276 284 "
            "307 309 324 337 342 344 352 367 369 377 384 389 392 398 400 402 405 435 446 460-461 467 482 484 487"
        ),
        "same-colour-spot": "044-045 047-051 053-054 056 059",
        "small-holes": "038-040 043 061-067 069-077",
        "small-scratches": "078-091 093",
    },
    "chewinggum": {
        "chunk-of-gum-missing": "005 016-017 020 023-024 040 043 047-050 052 054 056 058 062",
        "chunk-of-gum-missing_small-cracks": "002 004 006 009-010 012-015 018 022 051 053 061 064",
        "corner-missing": "025-029 031 033-037 039",
        "good": (
            "006 012-013 050 084 087 089 093 098 104 130 143 148 166 181 213 228 239 244-245 260 272 276 284 307 "
            "309 324 337 342 344 352 367 369 377 384 389 392 398 400 402 405 435 446 460-461 467 482 486-487 497"
        ),
        "similar-colour-spot": "075-079 082-084 087-090 092 094-099",
    },
    "fryum": {
        "different-colour-spot": "007 020-025 027 029 031-039 083-084 086 088-089 096-097 099",
        "fryum-stuck-together": "040-059",
        "good": (
            "006 012-013 023 050 084 087 089 093 098 104 130 143 148 166 181 213 228 239 244-245 260 272 276 284 "
            "307 309 324 337 342 344 352 367 369 377 384 389 392 398 400 402 405 435 446 460-461 467 482 484 487"
        ),
        "middle-breakage": "016 060-064 067-068 070-079",
    },
    "macaroni1": {
        "chip-around-edge-and-corner": "000-004 007-008 010-014 016-018 020-021",
        "different-colour-spot": "023-037",
        "good": (
            "0011 0013 0016 0024 0026-0027 0046 0100 0107 0159 0168 0170 0172 0174 0178 0187 0196 0208 0214-0215 "
            "0237 0261 0286 0294 0297 0303 0306 0320 0333 0363 0377 0394 0400 0402 0417 0423 0427 0457 0469 0479 "
            "0483-0484 0488 0490 0514 0518 0520 0525 0545 0552 0569 0615 0617 0619 0621 0629 0631 0648 0654 0657 "
            "0659 0674 0684-0685 0688 0690 0694 0705 0725 0730 0735 0739 0751 0755 0764 0768 0779 0784 0790 "
            "0796-0797 0800 0804 0811 0844 0869 0871 0892 0900 0920 0923 0935 0952-0953 0964 0967 0974 0985 0994 "
            "0996"
        ),
        "middle-breakage_small-scratches": "038-047",
        "similar-colour-spot": "048-054 056-069",
        "small-cracks": "071-072 074-077 079-099",
    },
    "macaroni2": {
        "color-spot-similar-to-the-object": "010-029 041-043",
        "different-color-spot": "030-040 044",
        "good": (
            "0011 0013 0016 0024 0026-0027 0046 0100 0107 0159 0168 0170 0172 0174 0178 0187 0196 0208 0214-0215 "
            "0237 0261 0286 0294 0297 0303 0306 0320 0333 0363 0377 0394 0400 0402 0417 0423 0427 0457 0469 0479 "
            "0483-0484 0488 0490 0514 0518 0520 0525 0545 0552 0569 0615 0617 0619 0621 0629 0631 0648 0654 0657 "
            "0659 0674 0684-0685 0688 0690 0694 0705 0725 0730 0735 0739 0751 0755 0764 0768 0779 0784 0790 "
            "0796-0797 0800 0804 0811 0844 0869 0871 0892 0900 0920 0923 0935 0952-0953 0964 0967 0974 0985 0994 "
            "0996"
        ),
        "small-chip-around-edge": "045 047-060 063-064 066 069",
        "small-scratches": "070 085-099",
    },
    "pcb1": {
        "bent": "000-008 010-014",
        "good": (
            "0011 0013 0016 0024 0026-0027 0046 0100 0107 0159 0168 0170 0172 0174 0178 0187 0196 0208 0214-0215 "
            "0237 0261 0286 0294 0297 0303 0306 0320 0333 0363 0377 0394 0400 0402 0417 0423 0427 0457 0469 0479 "
            "0483-0484 0488 0490 0514 0518 0520 0525 0545 0552 0569 0615 0617 0619 0621 0629 0631 0648 0654 0657 "
            "0659 0674 0684-0685 0688 0690 0694 0705 0725 0730 0735 0739 0751 0755 0764 0768 0779 0784 0796-0797 "
            "0800 0804 0811 0844 0869 0871 0892 0900 0920 0923 0935 0940 0952 0957 0964 0971 0974 0989 0994 1000"
        ),
        "melt": "015-019 021-039 060-068 070-079 081-083",
        "missing": "041-050 052 054-059",
        "scratch": "085-096 098-099",
    },
    "pcb2": {
        "bent": "000 002-005 007-009 011-014",
        "good": (
            "0011 0013 0016 0024 0026-0027 0046 0100 0107 0159 0168 0170 0172 0174 0178 0187 0196 0208 0214-0215 "
            "0237 0261 0286 0294 0297 0303 0306 0320 0333 0363 0377 0394 0400 0402 0417 0423 0427 0457 0469 0479 "
            "0483-0484 0488 0490 0514 0518 0520 0525 0545 0552 0569 0615 0617 0619 0621 0629 0631 0648 0654 0657 "
            "0659 0674 0684-0685 0688 0690 0694 0705 0725 0730 0735 0739 0751 0755 0764 0768 0779 0784 0796-0797 "
            "0800 0804 0811 0844 0869 0871 0892 0900 0920 0923 0935 0940 0952 0954 0964 0968 0974 0986 0994 0997"
        ),
        "melt": "015-032 034-036 039 058 060-084",
        "missing": "040-042 044-047 049-057 059",
        "scratch": "085-095 097-099",
    },
    "pcb3": {
        "bent": "000-005 007-019",
        "good": (
            "0011 0013 0016 0024 0026-0027 0046 0100 0107 0159 0168 0170 0172 0174 0178 0187 0196 0208 0214-0215 "
            "0237 0261 0286 0294 0297 0303 0306 0320 0333 0363 0377 0394 0400 0402 0417 0423 0427 0457 0469 0479 "
            "0483-0484 0488 0490 0514 0518 0520 0525 0545 0552 0569 0615 0617 0619 0621 0629 0631 0648 0654 0657 "
            "0659 0674 0684-0685 0688 0690 0694 0705 0725 0730 0735 0739 0751 0755 0764 0768 0779 0784 0796-0797 "
            "0800 0804 0811 0844 0869 0871 0892 0900 0920 0923 0935 0940 0952 0958 0964 0972 0974 0977 0991 0994 "
            "1002"
        ),
        "melt": "021-039 060-078",
        "missing": "040-044 047 049-050 052-059",
        "scratch": "080-099",
    },
    "pcb4": {
        "extra": "025-026 028-029 031-033 035 037-042 044 083-084 087 091 093-094 099",
        "good": (
            "0011 0013 0016 0024 0026-0027 0046 0100 0107 0159 0168 0170 0172 0174 0178 0187 0196 0208 0214-0215 "
            "0237 0261 0286 0294 0297 0303 0306 0320 0333 0363 0377 0394 0400 0402 0417 0423 0427 0457 0469 0479 "
            "0483-0484 0488 0490 0514 0518 0520 0525 0545 0552 0569 0615 0617 0619 0621 0629 0631 0648 0654 0657 "
            "0659 0674 0684-0685 0688 0690 0694 0705 0725 0730 0735 0739 0751 0755 0764 0768 0779 0784 0796-0797 "
            "0800 0804 0811 0844 0869 0871 0892 0900 0920 0923 0935 0940 0952 0957 0964 0971 0974 0977 0990 0994 "
            "1001"
        ),
        "missing": "046 048-049 051-053 055 057 059 061-063 065-069 072-073",
    },
    "pipe_fryum": {
        "burnt": "000-014",
        "corner-and-edge-breakage": "015-029",
        "different-colour-spot": "030-039",
        "good": (
            "006 012-013 023 050 084 087 089 093 098 104 130 143 148 166 181 213 228 239 244-245 260 272 276 284 "
            "307 309 324 337 342 344 352 367 369 377 384 389 392 398 400 402 405 435 446 460-461 467 482 484 487"
        ),
        "similar-colour-spot": "050-069",
        "small-scratches": "070-073 075-086 088-089",
        "stuck-together": "090-099",
    },
}
