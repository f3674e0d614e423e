"""The words `harness.scoring.answer_scope` reads a reply's stance by: cues, boundaries, verdicts, answer markers.

Data only, in lower case as a model writes it after `answer_tokens.tokenize` expands contractions
("can't" -> "cannot"); Chinese and Japanese phrases without spaces. A longer phrase wins over a
shorter one at the same place. Cue kinds: ``neg``, ``refuse``, ``question`` (asked, supposed,
conceded or listed: not claimed) and ``neutral`` (looks like a cue: "no doubt"). Reach: ``pre``, the
mentions after the cue in its clause; ``post``, the mention just before it (and the list it ends);
``both``, forward, and back when no mention follows in its clause.
"""

from __future__ import annotations

PRE, POST, BOTH = "pre", "post", "both"

#: Negation and absence. "no", "not" and their kin only look forward: "contamination and no
#: other defect" asserts contamination. Predicates of absence also look back ("X is absent").
NEGATIONS: dict[str, str] = {
    **dict.fromkeys((
        "no", "not", "never", "without", "neither", "nor", "free of", "free from", "lack of", "absence of",
        "rather than", "instead of", "none of", "no sign of", "no signs of", "no evidence of", "do not", "does not",
        "did not", "unlike", "nothing", "hardly", "barely", "scarcely", "doubt", "i doubt", "zero",
        # German, French, Spanish, Italian, Portuguese (Spanish "no" is the English one)
        "kein", "keine", "keinen", "keinem", "keiner", "keines", "weder", "ohne",
        "pas", "aucun", "aucune", "sans", "ni", "sin", "ningún", "ninguna", "ninguno", "nessun", "nessuna",
        "senza", "não", "nenhum", "nenhuma", "sem",
        # Dutch, Russian
        "geen", "niet", "zonder", "не", "нет", "без", "ни",
        # Chinese: negation precedes what it denies
        "不", "不是", "没", "没有", "無", "无", "非", "未", "并非", "並非",
    ), PRE),
    **dict.fromkeys((
        "is not", "are not", "was not", "were not", "cannot be", "could not be",
        "absent", "is absent", "are absent", "not present", "not visible", "not detected", "not found",
        "not observed", "not seen", "not evident", "not apparent", "not the case", "not applicable",
        "unlikely", "ruled out", "rule out", "rules out", "excluded", "exclude", "excludes", "none", "rejected",
        "reject", "rejects",
        "cannot see", "cannot find", "cannot detect", "cannot spot", "cannot observe",
        "could not see", "could not find", "could not detect", "do not see", "does not show", "do not apply",
        "does not apply", "not apply",
        "nicht", "ist nicht", "nicht vorhanden", "nicht sichtbar", "non", "no es", "no hay", "no está",
    ), BOTH),
    # "crack-free"; Japanese and Korean: negation follows what it denies
    **dict.fromkeys(("free", "없", "아니", "ない", "なし", "無い", "無し", "ません", "ありません", "ではない", "じゃない", "ではありません"),
                    POST),
}

#: Refusal and inability. They scope like negations and win over them.
REFUSALS: dict[str, str] = dict.fromkeys((
    "cannot", "cannot tell", "cannot determine", "cannot say", "cannot classify", "cannot identify",
    "cannot decide", "cannot be sure", "cannot be certain", "cannot confirm", "cannot answer", "cannot help",
    "cannot assist", "cannot provide", "cannot judge", "cannot distinguish", "cannot conclude",
    "cannot see the image", "cannot view", "cannot make out", "could not determine", "could not tell",
    "unable to", "not able to", "not sure", "not certain", "unsure", "uncertain", "unclear", "not clear",
    "hard to tell", "hard to say", "hard to determine", "difficult to tell", "difficult to say",
    "difficult to determine", "impossible to", "no way to", "not possible to", "do not know", "does not know",
    "not enough information", "insufficient", "will not", "refuse to", "decline", "must decline",
    "sorry", "i am sorry", "apologies", "i apologize", "as an ai", "as an ai language model", "unfortunately",
    "too blurry", "not possible", "cannot be determined", "is not clear", "is not possible", "am not sure",
    "am not certain", "not clear enough",
    "kann nicht", "nicht sicher", "unklar", "leider", "ne peux pas", "pas sûr", "pas certain", "impossible de",
    "désolé", "no puedo", "no estoy seguro", "no estoy segura", "lo siento", "imposible",
    "无法", "無法", "不能", "不确定", "不清楚", "抱歉", "对不起",
    "できません", "わかりません", "分かりません", "判断できません", "申し訳", "すみません",
), BOTH)

#: Not a claim: asked ("whether"), supposed ("if") or described ("X would show ...", "X refers to ...").
QUESTIONS: dict[str, str] = {
    **dict.fromkeys(("whether", "if", "between", "at first", "initially", "first i thought", "i first thought", "is it", "is this", "is there", "could it be", "could this be",
                     "might it be", "ob", "si c'est", "si es"), PRE),
    **dict.fromkeys(("would", "would show", "would appear", "would look", "would mean", "would involve",
                     "typically", "usually", "refers to", "means", "is defined as", "is characterized by",
                     "is characterised by", "involves", "describes", "would be visible"), POST),
}

#: Phrases that contain a cue word but deny or refuse nothing; matched so that their words stay silent.
NEUTRALS: tuple[str, ...] = (
    "no doubt", "without a doubt", "without doubt", "without any doubt", "no question", "not only",
    "cannot rule out", "could not rule out", "cannot exclude", "cannot be ruled out", "cannot be excluded", "if i had to", "if i must", "if forced",
    "if forced to choose", "as if", "other than", "apart from", "aside from", "no matter", "not just",
    "good question", "good catch", "good news",
)

#: A concession opens a clause whose mentions are conceded, not claimed ("Although it resembles a
#: scratch, it is a crack"; "contamination, although broken small is possible").
CONCESSIONS: tuple[str, ...] = ("although", "though", "even though", "whereas", "while", "obwohl", "bien que", "aunque",
                                "虽然", "雖然")

#: A restated list of the candidates: every mention after it in its sentence is listed, not claimed.
LISTINGS: tuple[str, ...] = (
    "candidates :", "candidate classes :", "the candidates are", "the candidate classes are", "options :",
    "the options are", "the classes are", "the possible classes are", "possible classes :", "choices :",
    "the choices are", "options include", "classes :",
)

#: Words that end a clause (besides , ; : ( ) | - and sentence ends): a cue never reaches past them.
CONTRASTS: tuple[str, ...] = (
    "but", "however", "yet", "instead", "rather", "except", "nevertheless",
    "nonetheless", "aber", "sondern", "jedoch", "mais", "cependant", "pero", "sino", "但", "但是", "而是",
    "不过", "しかし", "でも", "ただし",
)

#: Japanese "X ではなく Y" (not X but Y): denies what precedes and ends the clause.
NEG_THEN_BOUNDARY: tuple[str, ...] = ("ではなく", "じゃなく")

#: Words that close a list ("no scratch, crack, or hole"); a looking-back cue never reaches past one.
CONJUNCTIONS: frozenset[str] = frozenset(("or", "and", "nor", "o", "y", "ou", "et", "oder", "und", "或", "和", "と", "か"))
#: Words a list may hold besides its mentions.
GLUE: frozenset[str] = CONJUNCTIONS | {"a", "an", "the", "any", "either", "also", "even"}

#: A clause without mentions that starts with one of these (or with a negation cue) is a verdict: it answers
#: the clause before it ("Scratch: no", "Crack - not seen"), the question before it ("Is it a scratch?
#: No.") or the clauses after it ("Absent: crack, hole"). Check marks are tokenised as "yes" and "no".
VERDICT_YES: frozenset[str] = frozenset((
    "yes", "yeah", "yep", "correct", "true", "present", "visible", "detected", "found", "confirmed",
    "ja", "oui", "sí", "si", "是", "はい",
))
VERDICT_NO: frozenset[str] = frozenset((
    "no", "nope", "false", "absent", "none", "not present", "not visible", "not detected", "not found",
    "not observed", "not applicable", "nein", "non", "否", "没有", "无", "いいえ",
))

#: Phrases that mean "good" (a normal part) when ``good`` is a candidate: asserted mentions of it.
GOOD_PHRASES: tuple[str, ...] = (
    "no defect", "no defects", "no visible defect", "no visible defects", "no anomaly", "no anomalies",
    "no visible anomaly", "no visible anomalies", "defect free", "anomaly free", "free of defects",
    "free from defects", "free of any defect", "free of any defects", "without defects", "without any defect",
    "without any defects", "not defective", "non defective", "flawless", "defectless",
)
#: "normal" means good only as a predicate ("looks normal"): "the normal reference" names no class.
GOOD_NORMAL_VERBS: tuple[str, ...] = ("is", "are", "looks", "look", "appears", "appear", "seems", "seem", "be", "as")
GOOD_NORMAL_ADVERBS: tuple[str, ...] = ("", "completely", "perfectly", "entirely", "totally", "fully", "quite")
#: Whole replies that mean good (the exact rule): besides the candidate's own name and key.
GOOD_EXACT: tuple[str, ...] = ("normal", "no defect", "no defects", "defect free", "no anomaly", "no anomalies")

# ----------------------------------------------------------------------------- answer markers

#: What may open a conclusion: "Therefore, ...", "In conclusion: ...".
CONNECTORS: tuple[str, ...] = (
    "so", "thus", "hence", "therefore", "consequently", "accordingly", "overall", "in conclusion", "to conclude",
    "in summary", "in short", "to sum up", "all in all", "conclusion", "finally", "ergo", "daher", "deshalb",
    "donc", "ainsi", "por lo tanto", "por tanto", "así que", "因此", "所以", "综上", "よって", "したがって", "つまり",
)
#: Labels of an answer: "Final answer: X", "The defect is X", "Antwort: X".
ANSWER_LABELS: tuple[str, ...] = tuple(
    f"{owner}{quality}{noun}"
    for owner in ("", "the ", "my ")
    for quality in ("", "final ", "best ", "correct ", "most likely ", "predicted ")
    for noun in ("answer", "classification", "class", "label", "prediction", "verdict", "result", "choice",
                 "defect", "defect class", "defect type", "defect category", "anomaly", "anomaly type",
                 "anomaly class", "category")
) + (
    "antwort", "endgültige antwort", "klasse", "ergebnis", "réponse", "réponse finale", "classe", "respuesta",
    "respuesta final", "clase", "die antwort", "die klasse", "la réponse", "la classe", "la respuesta", "la clase",
    "答案", "最终答案", "结论", "結論", "类别", "答え", "回答", "最終回答", "クラス",
)
#: What joins a label to its answer ("Answer: X", "the defect is X").
LABEL_LINKS: tuple[str, ...] = (
    ":", "=", "-", "is", "is :", "would be", "should be", "must be", "ist", "est", "es", "是", "为", "は",
)
#: A stated choice: "I'd go with X", "The best match is X".
CHOICES: tuple[str, ...] = (
    "i choose", "i would choose", "i will choose", "i pick", "i would pick", "i will pick", "i select",
    "i would select", "i go with", "i would go with", "i will go with", "i would say", "i say",
    "i classify it as", "i would classify it as", "i classify this as", "i would classify this as",
    "i conclude", "i will say", "i am going with", "i am going to go with", "the best match is", "the best fit is", "the closest match is", "the closest match",
    "the best match", "it is classified as", "this is classified as", "classified as", "i answer",
)
#: After a connector: the subject and verb before the answer ("Therefore, it is X", "Thus the bottle shows X").
COPULAS: tuple[str, ...] = (
    "is", "are", "would be", "must be", "shows", "show", "has", "exhibits", "contains", "displays",
    "looks like", "appears to be", "seems to be", "is likely",
)
