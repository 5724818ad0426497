"""Write tests/data/cpwer_meeteval.json: cpWER of random speaker sets computed by meeteval (the
reference implementation, built from its sdist; a development tool only, not a dependency).
Run with meeteval installed: `python scripts/make_cpwer_fixture.py > tests/data/cpwer_meeteval.json`."""
import json
import random

from meeteval.wer.wer.cp import cp_word_error_rate as cpwer

rng = random.Random(7)
vocab = "the patient has pain in left right knee no fever take ibuprofen twice a day doctor okay".split()  # noqa: SIM905
cases = []
for k in range(60):
    nr, nh = rng.randint(1, 4), rng.randint(1, 4)
    ref = {f"r{i}": " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))) for i in range(nr)}
    # hypotheses: perturb some reference speakers, shuffle labels
    hyp = {}
    for j in range(nh):
        base = ref[f"r{j}"].split() if j < nr and rng.random() < 0.8 else []
        words = [w if rng.random() > 0.2 else rng.choice(vocab) for w in base]
        if rng.random() < 0.3:
            words += [rng.choice(vocab) for _ in range(rng.randint(1, 4))]
        hyp[f"h{(j * 3 + k) % 7}"] = " ".join(words)
    res = cpwer(ref, hyp)
    cases.append({"reference": ref, "hypothesis": hyp, "errors": res.errors, "length": res.length,
                  "assignment": [list(a) for a in res.assignment]})
ABOUT = ("cpWER of random speaker sets computed by meeteval 0.4.3 (meeteval.wer.wer.cp.cp_word_error_rate), "
         "the reference implementation; tests/test_speakers.py checks ours gives the same error counts")
print(json.dumps({"_about": ABOUT, "cases": cases}, indent=1))
