"""The fourteen risk factors of the UN Framework of Analysis for Atrocity Crimes (2014), in English and
French, for what people read: the console, notifications, reports.

Risk factors 1-8 are common to all atrocity crimes, 9-10 specific to genocide, 11-12 to crimes against
humanity, 13-14 to war crimes. The English titles are the Framework's; the French ones follow its French
edition's wording as far as it could be checked here.
"""

from __future__ import annotations

RISK_FACTORS: dict[int, dict[str, str]] = {
    1: {"en": "Situations of armed conflict or other forms of instability",
        "fr": "Situations de conflit armé ou d'autres formes d'instabilité"},
    2: {"en": "Record of serious violations of international human rights and humanitarian law",
        "fr": "Antécédents de violations graves du droit international des droits de l'homme et du droit "
              "international humanitaire"},
    3: {"en": "Weakness of State structures", "fr": "Faiblesse des structures de l'État"},
    4: {"en": "Motives or incentives", "fr": "Motivations ou incitations"},
    5: {"en": "Capacity to commit atrocity crimes", "fr": "Capacité de commettre des atrocités criminelles"},
    6: {"en": "Absence of mitigating factors", "fr": "Absence de facteurs atténuants"},
    7: {"en": "Enabling circumstances or preparatory action",
        "fr": "Circonstances favorables ou actes préparatoires"},
    8: {"en": "Triggering factors", "fr": "Facteurs déclencheurs"},
    9: {"en": "Intergroup tensions or patterns of discrimination against protected groups",
        "fr": "Tensions intergroupes ou pratiques discriminatoires à l'encontre de groupes protégés"},
    10: {"en": "Signs of an intent to destroy in whole or in part a protected group",
         "fr": "Signes d'une intention de détruire en tout ou en partie un groupe protégé"},
    11: {"en": "Signs of a widespread or systematic attack against any civilian population",
         "fr": "Signes d'une attaque généralisée ou systématique contre une population civile"},
    12: {"en": "Signs of a plan or policy to attack any civilian population",
         "fr": "Signes d'un plan ou d'une politique d'attaque contre une population civile"},
    13: {"en": "Serious threats against those protected under international humanitarian law",
         "fr": "Menaces graves contre les personnes protégées par le droit international humanitaire"},
    14: {"en": "Serious threats against humanitarian or peacekeeping operations",
         "fr": "Menaces graves contre les opérations humanitaires ou de maintien de la paix"},
}  # fmt: skip


def risk_factor_title(number: int, language: str = "en") -> str:
    """'Risk factor 3: Weakness of State structures' (or its French), for a number 1-14."""
    titles = RISK_FACTORS[number]
    label = "Facteur de risque" if language == "fr" else "Risk factor"
    return f"{label} {number} : {titles['fr']}" if language == "fr" else f"{label} {number}: {titles['en']}"
