"""A small bilingual grammar: Spanish sentences, their English translations and word alignments.

It generates the synthetic parallel corpus of the toy translator (``scripts/train_translator.py``).
The grammar is small but has the phenomena the lecture talks about when it shows
cross-attention as alignment:

* **adjective-noun reordering**: ``el gato negro`` -> ``the black cat`` (also ``muy``:
  ``la casa muy grande`` -> ``the very big house``);
* **gender and number agreement** in Spanish (``el gato negro``, ``la casa negra``,
  ``los gatos negros``, ``las casas verdes``) that English does not mark on determiners or
  adjectives, and verb agreement in both (``come`` / ``comen`` -> ``eats`` / ``eat``);
* English ``a`` / ``an`` chosen by the next English word (``una manzana roja`` ->
  ``a red apple``, ``una manzana`` -> ``an apple``), irregular English plurals
  (``los ratones`` -> ``the mice``) and third-person ``-s`` / ``-es`` / ``-ies``;
* Spanish personal ``a`` before an animate object, with no English counterpart
  (``el niño ve al perro`` -> ``the boy sees the dog``);
* negation with English do-support (``el gato no duerme`` -> ``the cat does not sleep``) and
  coordinated subjects with plural agreement (``el perro y la gata duermen``).

Every sentence comes with its word alignment (source word index, target word index), in the
Pharaoh format of word-alignment tools (``0-0 1-2 2-1``), and the list of adjective-noun
swaps, so that checks can ask whether cross-attention points at the aligned source word.
Pure Python, no torch: ``Grammar().sample(rng)`` with a ``random.Random``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------- lexicon
# Nouns: Spanish singular, Spanish plural, gender, English singular, English plural, class.
# Classes: "animate" (subjects, objects with personal "a"), "food", "drink", "thing", "place".
_NOUNS = """
gato gatos m cat cats animate
gata gatas f cat cats animate
perro perros m dog dogs animate
perra perras f dog dogs animate
niño niños m boy boys animate
niña niñas f girl girls animate
hombre hombres m man men animate
mujer mujeres f woman women animate
profesor profesores m teacher teachers animate
profesora profesoras f teacher teachers animate
alumno alumnos m student students animate
alumna alumnas f student students animate
caballo caballos m horse horses animate
pájaro pájaros m bird birds animate
ratón ratones m mouse mice animate
pez peces m fish fish animate
oso osos m bear bears animate
lobo lobos m wolf wolves animate
zorro zorros m fox foxes animate
conejo conejos m rabbit rabbits animate
pato patos m duck ducks animate
elefante elefantes m elephant elephants animate
mono monos m monkey monkeys animate
león leones m lion lions animate
vaca vacas f cow cows animate
oveja ovejas f sheep sheep animate
gallina gallinas f hen hens animate
abuelo abuelos m grandfather grandfathers animate
abuela abuelas f grandmother grandmothers animate
médico médicos m doctor doctors animate
amigo amigos m friend friends animate
amiga amigas f friend friends animate
manzana manzanas f apple apples food
naranja naranjas f orange oranges food
pan panes m bread breads food
queso quesos m cheese cheeses food
pescado pescados m fish fish food
huevo huevos m egg eggs food
pastel pasteles m cake cakes food
galleta galletas f cookie cookies food
uva uvas f grape grapes food
tomate tomates m tomato tomatoes food
zanahoria zanahorias f carrot carrots food
plátano plátanos m banana bananas food
sopa sopas f soup soups food
leche leches f milk milks drink
jugo jugos m juice juices drink
café cafés m coffee coffees drink
té tés m tea teas drink
limonada limonadas f lemonade lemonades drink
libro libros m book books thing
carta cartas f letter letters thing
caja cajas f box boxes thing
pelota pelotas f ball balls thing
llave llaves f key keys thing
flor flores f flower flowers thing
sombrero sombreros m hat hats thing
zapato zapatos m shoe shoes thing
vaso vasos m glass glasses thing
taza tazas f cup cups thing
puerta puertas f door doors thing
ventana ventanas f window windows thing
coche coches m car cars thing
bicicleta bicicletas f bicycle bicycles thing
lápiz lápices m pencil pencils thing
paraguas paraguas m umbrella umbrellas thing
reloj relojes m clock clocks thing
cuadro cuadros m picture pictures thing
juguete juguetes m toy toys thing
barco barcos m boat boats thing
casa casas f house houses place
mesa mesas f table tables place
silla sillas f chair chairs place
cama camas f bed beds place
árbol árboles m tree trees place
río ríos m river rivers place
parque parques m park parks place
jardín jardines m garden gardens place
escuela escuelas f school schools place
ciudad ciudades f city cities place
bosque bosques m forest forests place
montaña montañas f mountain mountains place
playa playas f beach beaches place
calle calles f street streets place
puente puentes m bridge bridges place
tienda tiendas f shop shops place
cocina cocinas f kitchen kitchens place
isla islas f island islands place
"""

# Adjectives: masculine singular, feminine singular, masculine plural, feminine plural, English,
# class ("any", or "animate": only with animate nouns).
_ADJECTIVES = """
negro negra negros negras black any
blanco blanca blancos blancas white any
rojo roja rojos rojas red any
amarillo amarilla amarillos amarillas yellow any
verde verde verdes verdes green any
azul azul azules azules blue any
gris gris grises grises gray any
marrón marrón marrones marrones brown any
grande grande grandes grandes big any
pequeño pequeña pequeños pequeñas small any
nuevo nueva nuevos nuevas new any
viejo vieja viejos viejas old any
bonito bonita bonitos bonitas pretty any
feo fea feos feas ugly any
limpio limpia limpios limpias clean any
sucio sucia sucios sucias dirty any
alto alta altos altas tall any
bajo baja bajos bajas short any
largo larga largos largas long any
redondo redonda redondos redondas round any
pesado pesada pesados pesadas heavy any
ligero ligera ligeros ligeras light any
caro cara caros caras expensive any
barato barata baratos baratas cheap any
enorme enorme enormes enormes enormous any
extraño extraña extraños extrañas strange any
importante importante importantes importantes important any
feliz feliz felices felices happy animate
triste triste tristes tristes sad animate
cansado cansada cansados cansadas tired animate
hambriento hambrienta hambrientos hambrientas hungry animate
joven joven jóvenes jóvenes young animate
inteligente inteligente inteligentes inteligentes intelligent animate
valiente valiente valientes valientes brave animate
tranquilo tranquila tranquilos tranquilas calm animate
amable amable amables amables kind animate
"""

# Verbs: Spanish 3sg, Spanish 3pl, English 3sg, English base (= plural), object class:
# "intr" (no object; may take a place phrase), "food", "drink", "any" (any noun), "thing"
# (inanimate things only).
_VERBS = """
duerme duermen sleeps sleep intr
corre corren runs run intr
salta saltan jumps jump intr
canta cantan sings sing intr
baila bailan dances dance intr
nada nadan swims swim intr
camina caminan walks walk intr
juega juegan plays play intr
llora lloran cries cry intr
descansa descansan rests rest intr
espera esperan waits wait intr
trabaja trabajan works work intr
vive viven lives live intr
come comen eats eat food
prepara preparan prepares prepare food
bebe beben drinks drink drink
ve ven sees see any
mira miran watches watch any
encuentra encuentran finds find any
quiere quieren wants want any
sigue siguen follows follow any
ama aman loves love any
odia odian hates hate any
toca tocan touches touch any
empuja empujan pushes push any
lava lavan washes wash any
pinta pintan paints paint any
dibuja dibujan draws draw any
llama llaman calls call any
ayuda ayudan helps help any
tiene tienen has have thing
lleva llevan carries carry thing
compra compran buys buy thing
vende venden sells sell thing
abre abren opens open thing
rompe rompen breaks break thing
usa usan uses use thing
limpia limpian cleans clean thing
esconde esconden hides hide thing
"""

# Prepositions of a place phrase after an intransitive verb (Spanish, English).
PREPOSITIONS = [("en", "in"), ("sobre", "on"), ("bajo", "under"), ("cerca", "near"), ("con", "with"), ("sin", "without")]
# "cerca de la casa" -> "near the house": "de" has no English counterpart.

# Determiners: kind -> (m sg, f sg, m pl, f pl), English (sg, pl). "indefinite" English sg is a/an.
DETERMINERS = {
    "definite": (("el", "la", "los", "las"), ("the", "the")),
    "indefinite": (("un", "una", "unos", "unas"), ("a", "some")),
    "this": (("este", "esta", "estos", "estas"), ("this", "these")),
    "that": (("ese", "esa", "esos", "esas"), ("that", "those")),
    "my": (("mi", "mi", "mis", "mis"), ("my", "my")),
    "our": (("nuestro", "nuestra", "nuestros", "nuestras"), ("our", "our")),
}
DETERMINER_WEIGHTS = {"definite": 5, "indefinite": 3, "this": 1, "that": 1, "my": 1, "our": 1}
# Mass nouns: always singular, never with "un" / "una" ("the milk", not "a milk" or "the milks").
MASS = {"pan", "queso", "pescado", "sopa", "leche", "jugo", "café", "té", "limonada"}


@dataclass(frozen=True)
class Noun:
    es_sg: str
    es_pl: str
    gender: str
    en_sg: str
    en_pl: str
    kind: str


@dataclass(frozen=True)
class Adjective:
    forms: tuple[str, str, str, str]  # m sg, f sg, m pl, f pl
    en: str
    kind: str


@dataclass(frozen=True)
class Verb:
    es_sg: str
    es_pl: str
    en_sg: str
    en_base: str
    kind: str


def _rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines() if line.strip()]


NOUNS = [Noun(*r) for r in _rows(_NOUNS)]
ADJECTIVES = [Adjective(tuple(r[:4]), r[4], r[5]) for r in _rows(_ADJECTIVES)]
VERBS = [Verb(*r) for r in _rows(_VERBS)]


def article_a(next_word: str) -> str:
    """English indefinite article before ``next_word`` (vowel sound -> "an")."""
    return "an" if next_word[0] in "aeiou" else "a"


# ---------------------------------------------------------------------------------- phrases
@dataclass
class Phrase:
    """Parallel Spanish / English words with alignment links (es index, en index) and the
    adjective-noun swaps ((es adjective, es noun, en adjective, en noun) indices)."""

    es: list[str] = field(default_factory=list)
    en: list[str] = field(default_factory=list)
    links: list[tuple[int, int]] = field(default_factory=list)
    swaps: list[tuple[int, int, int, int]] = field(default_factory=list)

    def add(self, other: "Phrase") -> "Phrase":
        de, dn = len(self.es), len(self.en)
        self.es += other.es
        self.en += other.en
        self.links += [(i + de, j + dn) for i, j in other.links]
        self.swaps += [(a + de, b + de, c + dn, d + dn) for a, b, c, d in other.swaps]
        return self

    def word(self, es: str | None, en: str | None) -> "Phrase":
        """Append one Spanish and/or one English word, linked when both are given."""
        if es is not None:
            self.es.append(es)
        if en is not None:
            self.en.append(en)
        if es is not None and en is not None:
            self.links.append((len(self.es) - 1, len(self.en) - 1))
        return self


@dataclass(frozen=True)
class Example:
    source: str
    target: str
    links: tuple[tuple[int, int], ...]  # (source word, target word), sorted
    swaps: tuple[tuple[int, int, int, int], ...]  # (es adj, es noun, en adj, en noun)

    @property
    def pharaoh(self) -> str:
        return " ".join(f"{i}-{j}" for i, j in self.links)

    def target_to_source(self) -> dict[int, int]:
        """Each aligned target word's source word (the first link, for words with several)."""
        out: dict[int, int] = {}
        for i, j in self.links:
            out.setdefault(j, i)
        return out


class Grammar:
    """Samples (Spanish, English, alignment) triples. Probabilities are module constants."""

    P_ADJ = 0.55  # a noun phrase has an adjective
    P_MUY = 0.12  # ... modified by "muy"
    P_PLURAL = 0.35
    P_NEG = 0.15
    P_COORD = 0.1  # coordinated subject "el perro y el gato"
    P_PLACE = 0.6  # an intransitive verb takes a place phrase

    def __init__(self):
        self.by_kind: dict[str, list[Noun]] = {}
        for n in NOUNS:
            self.by_kind.setdefault(n.kind, []).append(n)
        self.verbs_by_kind: dict[str, list[Verb]] = {}
        for v in VERBS:
            self.verbs_by_kind.setdefault(v.kind, []).append(v)

    # vocabulary -------------------------------------------------------------------
    @staticmethod
    def spanish_words() -> list[str]:
        words = {w for n in NOUNS for w in (n.es_sg, n.es_pl)}
        words |= {w for a in ADJECTIVES for w in a.forms}
        words |= {w for v in VERBS for w in (v.es_sg, v.es_pl)}
        words |= {w for forms, _ in DETERMINERS.values() for w in forms}
        words |= {p for p, _ in PREPOSITIONS} | {"al", "a", "de", "del", "muy", "no", "y"}
        return sorted(words)

    @staticmethod
    def english_words() -> list[str]:
        words = {w for n in NOUNS for w in (n.en_sg, n.en_pl)}
        words |= {a.en for a in ADJECTIVES}
        words |= {w for v in VERBS for w in (v.en_sg, v.en_base)}
        words |= {w for _, en in DETERMINERS.values() for w in en} | {"an"}
        words |= {e for _, e in PREPOSITIONS} | {"very", "does", "do", "not", "and"}
        return sorted(words)

    # sampling ---------------------------------------------------------------------
    def noun_phrase(self, rng: random.Random, noun: Noun, plural: bool, personal_a: bool = False,
                    after: str | None = None) -> Phrase:
        """Determiner + noun (+ adjective): Spanish ``det N (muy) ADJ`` -> English
        ``det (very) ADJ N``. ``personal_a``: Spanish "a" before an animate object (a + el =
        al); ``after``: a preposition that fuses with "el" ("de" + "el" = "del")."""
        kind = rng.choices(list(DETERMINER_WEIGHTS), weights=list(DETERMINER_WEIGHTS.values()))[0]
        if noun.es_sg in MASS:
            plural = False
            kind = "definite" if kind == "indefinite" else kind
        es_forms, (en_sg, en_pl) = DETERMINERS[kind]
        slot = (0 if noun.gender == "m" else 1) + (2 if plural else 0)
        es_det, en_det = es_forms[slot], (en_pl if plural else en_sg)
        adj = None
        if rng.random() < self.P_ADJ:
            choices = [a for a in ADJECTIVES if a.kind == "any" or noun.kind == "animate"]
            adj = rng.choice(choices)
        muy = adj is not None and rng.random() < self.P_MUY
        en_noun = noun.en_pl if plural else noun.en_sg
        first_en = "very" if muy else (adj.en if adj else en_noun)
        if kind == "indefinite" and not plural:
            en_det = article_a(first_en)

        p = Phrase()
        if personal_a and es_det == "el":
            p.word("al", en_det)  # "al" = "a" + "el"
        elif after == "de" and es_det == "el":
            p.word("del", en_det)  # "del" = "de" + "el"; its "of" is dropped in English here
        else:
            if personal_a:
                p.word("a", None)  # no English counterpart
            p.word(es_det, en_det)
        es_noun_i = len(p.es)
        p.es.append(noun.es_pl if plural else noun.es_sg)
        if adj is None:
            p.en.append(en_noun)
            p.links.append((es_noun_i, len(p.en) - 1))
            return p
        if muy:
            p.es.append("muy")
            p.en.append("very")
            p.links.append((len(p.es) - 1, len(p.en) - 1))
        p.es.append(adj.forms[slot])
        es_adj_i = len(p.es) - 1
        p.en.append(adj.en)
        en_adj_i = len(p.en) - 1
        p.en.append(en_noun)
        en_noun_i = len(p.en) - 1
        p.links += [(es_adj_i, en_adj_i), (es_noun_i, en_noun_i)]
        p.swaps.append((es_adj_i, es_noun_i, en_adj_i, en_noun_i))
        return p

    def subject(self, rng: random.Random) -> tuple[Phrase, bool]:
        """A subject noun phrase (animate) and whether it is plural."""
        animals = self.by_kind["animate"]
        if rng.random() < self.P_COORD:
            p = self.noun_phrase(rng, rng.choice(animals), rng.random() < self.P_PLURAL)
            p.add(Phrase().word("y", "and"))
            p.add(self.noun_phrase(rng, rng.choice(animals), rng.random() < self.P_PLURAL))
            return p, True
        plural = rng.random() < self.P_PLURAL
        return self.noun_phrase(rng, rng.choice(animals), plural), plural

    def verb_phrase(self, rng: random.Random, plural: bool) -> Phrase:
        verb = rng.choice(VERBS)
        p = Phrase()
        if rng.random() < self.P_NEG:  # "no come" -> "does not eat" / "do not eat"
            p.es.append("no")
            p.en += ["do" if plural else "does", "not"]
            no = len(p.es) - 1
            p.links += [(no, len(p.en) - 2), (no, len(p.en) - 1)]
            p.word(verb.es_pl if plural else verb.es_sg, verb.en_base)
        else:
            p.word(verb.es_pl if plural else verb.es_sg, verb.en_base if plural else verb.en_sg)
        if verb.kind == "intr":
            if rng.random() < self.P_PLACE:
                es_prep, en_prep = rng.choice(PREPOSITIONS)
                pool = self.by_kind["place"] + (self.by_kind["animate"] if es_prep in ("con", "sin", "cerca") else [])
                noun = rng.choice(pool)
                if es_prep == "cerca":
                    p.word("cerca", "near")
                    np_ = self.noun_phrase(rng, noun, rng.random() < self.P_PLURAL, after="de")
                    if np_.es[0] != "del":
                        p.word("de", None)
                    p.add(np_)
                else:
                    p.word(es_prep, en_prep)
                    p.add(self.noun_phrase(rng, noun, rng.random() < self.P_PLURAL))
            return p
        pool = {
            "food": self.by_kind["food"],
            "drink": self.by_kind["drink"],
            "thing": self.by_kind["thing"],
            "any": self.by_kind["animate"] + self.by_kind["thing"] + self.by_kind["food"],
        }[verb.kind]
        noun = rng.choice(pool)
        p.add(self.noun_phrase(rng, noun, rng.random() < self.P_PLURAL, personal_a=noun.kind == "animate"))
        return p

    def sample(self, rng: random.Random) -> Example:
        subj, plural = self.subject(rng)
        sentence = subj.add(self.verb_phrase(rng, plural))
        return Example(
            source=" ".join(sentence.es),
            target=" ".join(sentence.en),
            links=tuple(sorted(sentence.links)),
            swaps=tuple(sentence.swaps),
        )


def read_examples(path) -> list[Example]:
    """Read a held-out file written by :func:`write_examples` (TSV: source, target, Pharaoh
    alignment, swaps as ``esAdj-esNoun-enAdj-enNoun`` groups)."""
    out = []
    for line in open(path, encoding="utf-8"):
        if not line.strip() or line.startswith("#"):
            continue
        source, target, pharaoh, swaps = line.rstrip("\n").split("\t")
        links = tuple(tuple(int(x) for x in pair.split("-")) for pair in pharaoh.split())
        sw = tuple(tuple(int(x) for x in group.split("-")) for group in swaps.split())
        out.append(Example(source, target, links, sw))
    return out


def write_examples(path, examples: list[Example]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("# source\ttarget\talignment (Pharaoh: source word-target word, 0-based)\t"
                "adjective-noun swaps (source adjective-source noun-target adjective-target noun)\n")
        for ex in examples:
            swaps = " ".join("-".join(str(x) for x in s) for s in ex.swaps)
            f.write(f"{ex.source}\t{ex.target}\t{ex.pharaoh}\t{swaps}\n")
