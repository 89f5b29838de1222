"""User-interface strings in Spanish (default) and English.

Every piece of text the app shows goes through :func:`t` (or a translator made
by :func:`translator`), so that adding a string means adding it to *both*
dictionaries below. ``tests/ui/test_i18n.py`` checks that the two languages
have the same keys and the same ``{placeholders}``.

Spanish terms follow the lecture: "cabeza de atención", "capa",
"flujo residual", "patrón de atención".
"""

from __future__ import annotations

from typing import Callable

DEFAULT_LANG = "es"

# Shown in the language selector, in their own language.
LANGUAGE_NAMES: dict[str, str] = {"es": "Español", "en": "English"}

STRINGS: dict[str, dict[str, str]] = {
    "es": {
        "app.title": "Banco de trabajo de circuitos de transformers",
        "page.attention": "Atención",
        # Sidebar
        "sidebar.language": "Idioma",
        "sidebar.model_header": "Modelo",
        "sidebar.model_select": "Modelo incluido",
        "sidebar.model_select_help": "Modelos que trae el proyecto. "
        "Se usa si la carpeta de abajo está vacía.",
        "sidebar.no_models": "No hay modelos incluidos todavía: "
        "escribe abajo la ruta de una carpeta con un checkpoint.",
        "sidebar.folder": "Carpeta de checkpoint local",
        "sidebar.folder_help": "Ruta de una carpeta con config.json, los pesos (safetensors) y el tokenizador. "
        "También vale un archivo .gguf. Si la rellenas, tiene prioridad sobre el modelo incluido. Pulsa Enter para aplicar.",
        "sidebar.folder_placeholder": "/ruta/a/mi/checkpoint",
        "sidebar.device_header": "Dispositivo y precisión",
        "sidebar.device": "Dispositivo",
        "sidebar.device_auto": "automático (GPU si hay)",
        "sidebar.device_help": "Dónde corre el modelo. Automático usa la GPU (CUDA) cuando la hay.",
        "sidebar.dtype": "Precisión",
        "sidebar.dtype_help": "float32 da los números de referencia; bfloat16 y float16 ocupan la mitad de memoria "
        "(y son más rápidos en GPU) a costa de precisión.",
        "sidebar.model_info": "{name} · {family} · {summary} · contexto de {n_ctx} tokens · {device}",
        "family.decoder": "decodificador",
        "family.encoder": "codificador",
        "family.encoder-decoder": "codificador-decodificador",
        # Attention page
        "attention.title": "Patrones de atención",
        "attention.intro": "Escribe un texto y elige una capa y una cabeza de atención para ver su patrón de atención: "
        "cuánto mira cada token (consulta, eje vertical) a cada token anterior (clave, eje horizontal). "
        "Lo que la cabeza lee de esos tokens lo escribe en el flujo residual.",
        "attention.intro_encoder": "Escribe un texto y elige una capa y una cabeza de atención para ver su patrón de "
        "atención. En un codificador la atención es bidireccional: cada token (consulta, eje vertical) puede mirar "
        "a todos los tokens (clave, eje horizontal), antes y después de él.",
        "attention.intro_seq2seq": "Modelo codificador-decodificador (Vaswani et al.): el codificador lee el texto de "
        "origen con atención bidireccional; el decodificador escribe el texto de destino con atención causal y, en "
        "cada capa, mira al origen con la atención cruzada. Elige el tipo de atención, la capa y la cabeza.",
        "attention.prompt": "Texto de entrada",
        "attention.source": "Texto de origen (codificador)",
        "attention.target": "Texto de destino (decodificador)",
        "attention.target_placeholder": "Vacío: la salida del propio modelo",
        "attention.target_help": "Déjalo vacío para que el modelo genere su propia salida (decodificación voraz) "
        "y ver la atención sobre ella, o escribe un texto de destino. Pulsa Enter para aplicar.",
        "attention.generated": "Salida del modelo (decodificación voraz): «{text}»",
        "attention.given_target": "Texto de destino: «{text}»",
        "attention.view": "Vista",
        "attention.view.head": "Una cabeza",
        "attention.view.layer": "Todas las cabezas de una capa",
        "attention.view.all": "Todas las capas",
        "attention.layer_range": "Capas",
        "attention.layer_range_help": "Este modelo tiene demasiadas cabezas para verlas todas a la vez: elige un "
        "rango de hasta {n} capas.",
        "attention.layer_range_clipped": "Se muestran {n} capas como máximo: de la {first} a la {last}.",
        "attention.all_caption": "{n} cabezas de atención; pasa el ratón por una celda para ver los tokens y el "
        "peso. Filas: capas; columnas: cabezas.",
        "attention.grid_too_big": "El texto tiene {n} tokens: {heads} patrones de ese tamaño no caben en una "
        "figura. Mira una cabeza cada vez (vista «Una cabeza») o usa un texto más corto.",
        "attention.view.detectors": "Detectores de cabezas",
        "attention.head_short": "Cabeza {head}",
        "attention.detector": "Detector",
        "attention.detector_help": "Anterior: atiende al token previo. Duplicado: a una aparición anterior del mismo "
        "token. Inducción: al token que siguió a esa aparición anterior. Primer token: al primer token (sumidero).",
        "attention.detector_click": "Haz clic en una celda para abrir el patrón de esa cabeza de atención (o elígela abajo).",
        "attention.detector.previous_token": "Token anterior",
        "attention.detector.duplicate_token": "Token duplicado",
        "attention.detector.induction": "Inducción",
        "attention.detector.first_token": "Primer token (sumidero)",
        "attention.detector_title": "Detector «{detector}»: puntuación de cada cabeza en este texto",
        "attention.score": "Puntuación",
        "attention.goto": "Abrir el patrón de una cabeza",
        "attention.goto_placeholder": "Elige una de las cabezas con más puntuación",
        "attention.kind": "Tipo de atención",
        "attention.kind.self": "Autoatención",
        "attention.kind.encoder": "Autoatención del codificador",
        "attention.kind.decoder": "Autoatención del decodificador",
        "attention.kind.cross": "Atención cruzada",
        "attention.prompt_help": "Pulsa Ctrl+Enter (o haz clic fuera) para aplicar.",
        "attention.default_prompt": "The cat sat on the mat. The cat sat on the mat.",
        "attention.default_source": "el gato negro come el pescado",
        "attention.layer": "Capa",
        "attention.head": "Cabeza de atención",
        "attention.running": "Ejecutando el modelo…",
        "attention.loading_model": "Cargando el modelo…",
        "attention.n_tokens": "{n} tokens",
        # Copy as code
        "code.title": "Copiar como código (Python)",
        # Export
        "export.caption": "Exportar esta figura",
        "export.no_browser": "PNG y SVG se dibujan con Chromium, que no está en este servidor (apt-get install "
        "chromium, o BROWSER_PATH con la ruta de un Chrome). HTML y CSV funcionan sin él.",
        "export.png": "PNG",
        "export.svg": "SVG",
        "export.html": "HTML interactivo",
        "export.csv": "Datos (CSV)",
        # Figure
        "figure.title": "Patrón de atención · capa {layer}, cabeza {head}",
        "figure.title.encoder": "Autoatención del codificador · capa {layer}, cabeza {head}",
        "figure.title.decoder": "Autoatención del decodificador · capa {layer}, cabeza {head}",
        "figure.title.cross": "Atención cruzada (destino → origen) · capa {layer}, cabeza {head}",
        "figure.grid_title": "Patrones de atención de todas las cabezas · capa {layer}",
        "figure.grid_title.encoder": "Autoatención del codificador, todas las cabezas · capa {layer}",
        "figure.grid_title.decoder": "Autoatención del decodificador, todas las cabezas · capa {layer}",
        "figure.grid_title.cross": "Atención cruzada, todas las cabezas · capa {layer}",
        "figure.all_title": "Patrones de atención de todas las cabezas · capas {first} a {last}",
        "figure.all_title.encoder": "Autoatención del codificador, todas las cabezas · capas {first} a {last}",
        "figure.all_title.decoder": "Autoatención del decodificador, todas las cabezas · capas {first} a {last}",
        "figure.all_title.cross": "Atención cruzada, todas las cabezas · capas {first} a {last}",
        "figure.query": "Consulta (query)",
        "figure.key": "Clave (key)",
        "figure.weight": "Peso",
        # Ablate & patch page
        "page.interventions": "Ablación y parcheo",
        "interventions.title": "Ablación y parcheo de activaciones",
        "interventions.intro": "Interviene el modelo mientras corre: apaga cabezas de atención (ablación) y mira cómo "
        "cambian sus predicciones, o copia activaciones de un texto limpio a uno corrupto (parcheo) para ver qué "
        "componentes llevan el comportamiento.",
        "interventions.tab_ablate": "Ablación",
        "interventions.seq2seq_intro": "Modelo codificador-decodificador: apaga cabezas de atención (su salida z "
        "pasa a 0) del codificador (EL), del decodificador (DL) o de la atención cruzada (CL) y mira cómo cambia la "
        "traducción, y cuánto pierde la traducción normal en probabilidad.",
        "interventions.seq2seq_heads_help": "EL0H1 = codificador, capa 0, cabeza 1; DL = autoatención del "
        "decodificador; CL = atención cruzada. Puedes elegir varias.",
        "interventions.seq2seq_nothing": "No se quita nada: elige cabezas arriba para ver la traducción con ablación.",
        "interventions.translation_normal": "Traducción normal: «{text}»",
        "interventions.translation_ablated": "Con {items} a cero: «{text}»",
        "interventions.translation_probs_title": "Probabilidad de cada token de la traducción normal: normal "
        "frente a ablación",
        "interventions.patch_decoder_only": "El parcheo de activaciones de esta página trabaja con modelos "
        "decodificadores; «{name}» es un codificador-decodificador. Prueba la pestaña de ablación, o elige un modelo "
        "decodificador (induction-2l, smollm2-135m-instruct).",
        "interventions.tab_patch": "Parcheo de activaciones",
        "interventions.default_prompt": "When Mary and John went to the store, John gave a drink to",
        "interventions.heads": "Cabezas de atención que se quitan (ablación)",
        "interventions.heads_help": "L1H3 = capa 1, cabeza 3. Puedes elegir varias a la vez.",
        "interventions.kind": "Tipo de ablación",
        "interventions.kind.zero": "Cero",
        "interventions.kind.mean": "Media",
        "interventions.kind.resample": "Remuestreo",
        "interventions.reference": "Texto de referencia",
        "interventions.reference_help": "La media (o el remuestreo) se toma de las activaciones de este texto. "
        "Para el remuestreo debe tener el mismo número de tokens que el texto de entrada.",
        "interventions.loss_clean": "Pérdida normal",
        "interventions.loss_ablated": "Pérdida con ablación",
        "interventions.kl": "KL(normal ‖ ablación), último token",
        "interventions.predictions_title": "Siguiente token: normal frente a ablación",
        "interventions.normal": "Normal",
        "interventions.ablated": "Con ablación",
        "interventions.probability": "Probabilidad",
        "interventions.patch_intro": "Parcheo con eliminación de ruido: se ejecuta el texto corrupto y, en cada "
        "componente, se copia su activación del texto limpio. Métrica: diferencia de logits (respuesta − incorrecta) "
        "en el último token, normalizada: 1 = comportamiento limpio recuperado, 0 = corrupto.",
        "interventions.clean": "Texto limpio",
        "interventions.corrupted": "Texto corrupto (mismo número de tokens)",
        "interventions.answer": "Respuesta correcta",
        "interventions.wrong": "Respuesta incorrecta",
        "interventions.token_help": "Un solo token, con su espacio inicial si lo lleva (por ejemplo « Mary»).",
        "interventions.default_clean": "When Mary and John went to the store, John gave a drink to",
        "interventions.default_corrupted": "When Mary and John went to the store, Mary gave a drink to",
        "interventions.default_answer": " Mary",
        "interventions.default_wrong": " John",
        "interventions.sweep": "Barrido",
        "interventions.sweep.resid_pre": "Flujo residual (capa × posición)",
        "interventions.sweep.attn_out": "Salida de atención (capa × posición)",
        "interventions.sweep.mlp_out": "Salida de MLP (capa × posición)",
        "interventions.sweep.head_out": "Salida de cada cabeza (capa × cabeza)",
        "interventions.sweep.attribution_head_out": "Parcheo por atribución: cabezas (aproximado, rápido)",
        "interventions.sweep.attribution_resid_pre": "Parcheo por atribución: flujo residual (aproximado, rápido)",
        "interventions.sweep.path_head_to_logits": "Parcheo de caminos: cada cabeza → logits directamente (parte "
        "del efecto que lleva)",
        "interventions.run": "Ejecutar barrido",
        "interventions.cancel": "Cancelar",
        "interventions.cancelled": "Barrido cancelado. Pulsa «Ejecutar barrido» para empezarlo de nuevo.",
        "interventions.running": "Parcheando…",
        "interventions.progress": "Parcheando: {done} de {total}",
        "interventions.press_run": "Pulsa «Ejecutar barrido» para calcularlo.",
        "interventions.metric_values": "Diferencia de logits: limpio {clean:.3f}, corrupto {corrupted:.3f}",
        "interventions.position": "Posición",
        "interventions.restored": "Recuperado",
        "interventions.layers": "Capas enteras que se quitan (ablación)",
        "interventions.layers_help": "ATTN1 = toda la atención de la capa 1 (sus cabezas y el sesgo b_O); "
        "MLP1 = el perceptrón multicapa (MLP) de la capa 1.",
        "interventions.neurons": "Neuronas del MLP que se quitan (ablación)",
        "interventions.neurons_help": "Escribe L<capa>N<neurona>, separadas por comas: L0N12, L1N5. Este modelo "
        "tiene capas 0..{n_layers} y neuronas 0..{d_mlp} en cada MLP.",
        "interventions.nothing_ablated": "No se quita nada: elige cabezas, capas o neuronas arriba. Estas son las "
        "predicciones normales del modelo.",
        "interventions.ablated_list": "Ablación ({kind}) de: {items}",
        # Residual stream page
        "page.residual": "Flujo residual",
        "residual.title": "Flujo residual",
        "residual.intro": "El flujo residual es un canal de comunicación: cada capa lee de él y escribe en él. "
        "La lente de logits lee el flujo después de cada capa como si fuera la última; la atribución directa "
        "a logits reparte el logit final entre las capas y cabezas de atención que lo escribieron.",
        "residual.default_prompt": "The capital of France is",
        "residual.default_answer": " Paris",
        "residual.tab_lens": "Lente de logits",
        "residual.tab_dla": "Atribución directa a logits",
        "residual.decoder_text": "Traducción hasta ahora (decodificador)",
        "residual.decoder_text_help": "El texto que el decodificador ya ha escrito; se lee su flujo residual en esas posiciones y se predice la palabra siguiente. Vacío: solo el token de inicio.",
        "residual.dla_cross_heads": "Atribución directa por cabeza de atención cruzada",
        "residual.tab_decomposition": "Descomposición del flujo residual",
        "residual.rank_title": "Rango de «{token}» en la última posición, capa a capa (1 = el más probable)",
        "residual.rank": "Rango",
        "residual.group": "Agrupar",
        "residual.group.component": "Por componente (cada cabeza, cada MLP)",
        "residual.group.layer": "Por capa",
        "residual.last_position": "último token ({position})",
        "residual.share": "Parte del flujo residual",
        "residual.decomposition_title": "Qué escribió cada componente en el flujo residual final · posición {position}",
        "residual.decomposition_identity": "Cada barra es ⟨componente, r⟩/‖r‖², la parte del flujo residual final "
        "r en su propia dirección: suman {total:.4f} (= 1). ‖r‖ = {norm:.3f}; la suma de los componentes difiere de "
        "r en {error:.1e} como máximo (redondeo).",
        "residual.target": "Token a seguir (opcional)",
        "residual.target_help": "Un solo token, con su espacio inicial si lo lleva. Vacío: la predicción final "
        "del modelo en la última posición.",
        "residual.first_top1": "«{token}» es el token más probable en la última posición desde la capa {layer}.",
        "residual.never": "(ninguna)",
        "residual.lens_title": "Lente de logits: token más probable por capa y posición (color: probabilidad de "
        "«{token}»)",
        "residual.target_prob": "P(«{token}»)",
        "residual.wrong_optional": "Respuesta incorrecta (opcional: diferencia de logits)",
        "residual.identity": "Suma de las atribuciones {total:.4f} + constante {constant:.4f} = logit {logit:.4f}",
        "residual.dla_layers": "Atribución directa por capa (embed = incrustaciones)",
        "residual.dla_heads": "Atribución directa por cabeza de atención",
        "residual.attribution": "Atribución",
        "residual.neurons_header": "Atribución directa por neurona",
        "residual.neuron_layer": "Capa del MLP",
        "residual.neuron_k": "Neuronas a mostrar (las de mayor |atribución|)",
        "residual.neurons_title": "Las {k} neuronas del MLP de la capa {layer} con mayor |atribución directa| "
        "(última posición)",
        "residual.neuron": "Neurona",
        "residual.neuron_identity": "Suma de las {n} neuronas de la capa {layer}: {total:.4f}; el MLP de la capa "
        "{layer} en la atribución de arriba: {mlp:.4f} (sin el sesgo b_out).",
        "residual.no_neurons": "«{name}» es solo de atención: no tiene neuronas de MLP a las que atribuir logits.",
        # Circuits page
        "page.circuits": "Circuitos QK/OV",
        "circuits.title": "Circuitos QK y OV",
        "circuits.intro": "Cada cabeza de atención es un circuito QK, que decide a dónde mirar, y un circuito OV, "
        "que decide qué mover al flujo residual (Elhage et al. 2021). Aquí se leen de los pesos, sin ejecutar texto.",
        "circuits.tab_head": "Una cabeza",
        "circuits.tab_copying": "Copia (autovalores OV)",
        "circuits.tab_composition": "Composición Q/K/V",
        "circuits.tokens": "Tokens a mostrar",
        "circuits.source_tokens": "Tokens de origen (codificador)",
        "circuits.target_tokens": "Tokens de destino (decodificador)",
        "circuits.default_target_tokens": "the black cat eats the fish",
        "circuits.no_ov": "{name} no tiene desincrustación (un codificador sin cabeza de salida): el circuito OV, "
        "la copia y las direcciones singulares acaban en W_U, así que aquí solo está el lado QK.",
        "circuits.tokens_help": "Los tokens distintos de este texto (máximo 40) forman las filas y columnas.",
        "circuits.default_tokens": "the cat sat on the mat",
        "circuits.qk_title": "Circuito QK · capa {layer}, cabeza {head} (W_E W_QK W_Eᵀ)",
        "circuits.ov_title": "Circuito OV · capa {layer}, cabeza {head} (W_E W_OV W_U)",
        "circuits.score": "Puntuación",
        "circuits.logit": "Logit",
        "circuits.source": "Token atendido (origen)",
        "circuits.output": "Token de salida",
        "circuits.copying_intro": "Puntuación de copia: Re(Σλ)/Σ|λ| de los autovalores del circuito OV completo. "
        "Cerca de 1: la cabeza copia el token al que atiende (cabezas de inducción); negativa: lo suprime.",
        "circuits.copying_title": "Puntuación de copia de cada cabeza",
        "circuits.copying": "Copia",
        "circuits.computing": "Calculando…",
        "circuits.mode": "Composición",
        "circuits.baseline": "Línea base de matrices aleatorias de la misma forma: {mean:.3f} ± {std:.3f}. "
        "El color muestra cuánto supera cada par esa media.",
        "circuits.top_pairs": "Pares más fuertes (escritora → lectora): {pairs}",
        "circuits.composition_title": "{mode}-composición: cabeza escritora (filas) → cabeza lectora (columnas)",
        "circuits.writer": "Cabeza escritora",
        "circuits.reader": "Cabeza lectora",
        "circuits.above_baseline": "Sobre la línea base",
        "circuits.view": "Vista",
        "circuits.view.tokens": "Tokens (QK y OV)",
        "circuits.view.positions": "Posiciones (QK posicional)",
        "circuits.view.svd": "Direcciones singulares del OV (SVD)",
        "circuits.n_positions": "Posiciones a mostrar",
        "circuits.n_offsets": "Distancias a mostrar (posición de la consulta − posición de la clave)",
        "circuits.pos_intro": "Circuito QK posicional W_pos W_QK W_posᵀ / √d_head: cuánto atiende una consulta "
        "en cada posición a una clave en cada posición solo por sus posiciones. Las celdas vacías son claves "
        "posteriores a la consulta, que un modelo causal nunca ve.",
        "circuits.pos_title": "Circuito QK posicional · capa {layer}, cabeza {head} (W_pos W_QK W_posᵀ)",
        "circuits.query_pos": "Posición de la consulta",
        "circuits.key_pos": "Posición de la clave",
        "circuits.probe": "Texto de prueba (posiciones rotatorias)",
        "circuits.probe_help": "Con RoPE no hay tabla de posiciones: se toman la consulta media y la clave media "
        "de la cabeza sobre este texto y se rotan para cada distancia.",
        "circuits.default_probe": "the cat sat on the mat and the dog sat on the log",
        "circuits.rotary_intro": "Posiciones rotatorias (RoPE): la puntuación solo depende de la distancia entre "
        "la consulta y la clave. Línea continua: consulta media · clave media rotadas a esa distancia; "
        "puntos: puntuación media observada en el texto de prueba a esa distancia.",
        "circuits.rotary_title": "Cabeza rotatoria · capa {layer}, cabeza {head}: puntuación según la distancia",
        "circuits.offset": "Distancia (consulta − clave)",
        "circuits.mean_qk": "Consulta media · clave media (rotadas)",
        "circuits.observed": "Puntuación media observada en el texto de prueba",
        "circuits.alibi_title": "Sesgo ALiBi · capa {layer}, cabeza {head}: −m·distancia",
        "circuits.alibi_slope": "Pendiente ALiBi de esta cabeza: m = {slope:.4g}. Una clave a d posiciones de la "
        "consulta recibe −{slope:.4g}·d en su puntuación, sean cuales sean los tokens.",
        "circuits.bias": "Sesgo",
        "circuits.no_positions": "«{name}» no tiene parámetros de posición: sus cabezas solo ven el orden a "
        "través de la máscara causal, así que no hay circuito QK posicional que mostrar.",
        "circuits.n_directions": "Direcciones singulares a mostrar",
        "circuits.svd_intro": "W_V W_O = U·diag(σ)·Vᵀ. Cada dirección lee del flujo residual los tokens cuya "
        "incrustación apunta a lo largo de u (columna «lee») y sube los logits de los tokens a lo largo de v "
        "(columna «escribe»); los del extremo opuesto llevan a los del otro extremo.",
        "circuits.svd_title": "Valores singulares de la matriz OV · capa {layer}, cabeza {head}",
        "circuits.singular_value": "Valor singular",
        "circuits.direction": "Dirección",
        "circuits.reads": "Lee (tokens)",
        "circuits.writes": "Escribe (sube el logit de)",
        "circuits.reads_opposite": "Lee (extremo opuesto)",
        "circuits.writes_opposite": "Escribe (baja el logit de)",
        # Model page
        "page.model": "Modelo",
        "model.title": "Arquitectura del modelo",
        "model.intro": "El modelo tal como lo dibuja la clase: incrustación y codificación posicional, bloques "
        "residuales (cabezas de atención y perceptrón multicapa que escriben en el flujo residual) y "
        "desincrustación. Cada parte muestra su ecuación, el nombre de su gancho (hook) y la forma de su tensor "
        "con el texto de abajo.",
        "model.prompt": "Texto para las formas",
        "model.prompt_help": "Las formas [lote, posición, ...] se calculan con este texto. Pulsa Enter para aplicar.",
        "model.layers": "× {n} capas (se muestra la capa 0)",
        "model.download_dot": "Descargar el diagrama (Graphviz .dot)",
        "model.col.stage": "Parte",
        "model.col.equation": "Ecuación",
        "model.col.hook": "Gancho (hook)",
        "model.col.shape": "Forma",
        "model.shapes_note": "Formas: lote × posición × dimensión; las cabezas añaden un eje de cabeza; el patrón "
        "de atención es lote × cabeza × consulta × clave.",
        "model.stage.embed": "Incrustación",
        "model.stage.pos_sinusoidal": "Codificación posicional sinusoidal",
        "model.stage.pos_standard": "Posiciones aprendidas",
        "model.stage.pos_rotary": "Posiciones rotatorias (RoPE)",
        "model.stage.pos_alibi": "ALiBi",
        "model.stage.pos_none": "Sin posiciones",
        "model.stage.resid": "Flujo residual",
        "model.stage.q": "Consultas",
        "model.stage.k": "Llaves",
        "model.stage.v": "Valores",
        "model.stage.pattern": "Patrón de atención",
        "model.stage.z": "Salida de cada cabeza",
        "model.stage.attn_out": "Suma al flujo residual",
        "model.stage.cross_pattern": "Atención cruzada",
        "model.stage.mlp_post": "Perceptrón multicapa",
        "model.stage.mlp_out": "Suma del MLP al flujo residual",
        "model.stage.final": "Normalización final",
        "model.stage.logits": "Desincrustación",
        # Errors: each says what went wrong and what to do.
        "error.detectors_single_stack": "Los detectores de cabezas de esta vista son para modelos decodificadores "
        "o codificadores; con «{name}» usa la vista de una cabeza o de una capa.",
        "error.head_out_of_range": "Esa capa o cabeza no existe: el modelo tiene capas 0..{n_layers} y "
        "cabezas 0..{n_heads}. Elige otra.",
        "error.no_logits": "El modelo «{name}» no tiene cabeza de salida (solo estados ocultos), así que no hay "
        "logits que mostrar. Elige un modelo con cabeza de lenguaje.",
        "error.decoder_only": "Esta vista funciona con modelos decodificadores; «{name}» no lo es. "
        "Elige un modelo decodificador (por ejemplo induction-2l o smollm2-135m-instruct).",
        "error.no_reference": "La ablación por media o por remuestreo necesita un texto de referencia: escríbelo "
        "arriba.",
        "error.reference_length": "Para el remuestreo el texto de referencia debe tener {n} tokens como el de entrada; "
        "tiene {m}. Cambia palabras por otras de igual longitud o usa la ablación por media.",
        "error.not_one_token": "«{text}» no es un solo token para este modelo ({field}). Prueba con otra palabra "
        "o añade o quita el espacio inicial.",
        "error.length_mismatch": "El texto limpio tiene {n} tokens y el corrupto {m}: el parcheo copia activaciones "
        "posición a posición, así que deben tener los mismos. Cambia un nombre por otro de igual longitud en tokens.",
        "error.no_difference": "La métrica es igual en el texto limpio y en el corrupto, así que no hay nada que "
        "recuperar. Cambia el texto corrupto o las respuestas.",
        "error.no_model": "No hay ningún modelo seleccionado. Elige un modelo incluido en la barra lateral "
        "o escribe la ruta de una carpeta de checkpoint.",
        "error.folder_missing": "La carpeta «{path}» no existe. Comprueba la ruta en la barra lateral "
        "(debe ser una carpeta con config.json y los pesos del modelo).",
        "error.not_a_folder": "«{path}» no es una carpeta. Escribe la ruta de la carpeta que contiene "
        "config.json y los pesos (o de un archivo .gguf), no la de otro archivo.",
        "error.model_load": "No se pudo cargar el modelo «{name}»: {detail} "
        "Elige otro modelo o corrige la carpeta en la barra lateral.",
        "error.empty_prompt": "El texto de entrada está vacío. "
        "Escribe algún texto para ver los patrones de atención.",
        "error.no_tokenizer": "El modelo «{name}» no tiene tokenizador, así que no puede convertir texto en tokens. "
        "Usa un checkpoint que incluya tokenizer.json.",
        "error.prompt_too_long": "El texto tiene {n} tokens, pero el modelo admite como máximo {n_ctx}. Acórtalo.",
        "error.forward": "El modelo falló al procesar el texto: {detail} Prueba con otro texto u otro modelo.",
        "error.neuron_syntax": "«{item}» no es el nombre de una neurona. Escribe cada neurona como "
        "L<capa>N<neurona> (por ejemplo L0N12), separadas por comas.",
        "error.neuron_out_of_range": "La neurona «{item}» no existe: este modelo tiene capas 0..{n_layers} y "
        "neuronas 0..{d_mlp} en cada MLP. Corrige el número.",
        "error.no_mlp": "El modelo «{name}» es solo de atención: no tiene MLP ni neuronas. Quita capas MLP o "
        "neuronas, o elige un modelo con MLP.",
        "error.layer_out_of_range": "Esa capa no existe: el modelo tiene capas 0..{n_layers}. Elige otra.",
        "error.unknown_head": "«{item}» no es una cabeza de este modelo. Elige una de la lista.",
        "error.seq2seq_only": "Esta vista es para modelos codificador-decodificador.",
        "error.position_out_of_range": "Esa posición no existe: el texto tiene posiciones 0..{n}. Elige otra.",
        "loading.progress": "Cargando el modelo… {seconds} s. La primera carga de un modelo GGUF lo convierte "
        "una sola vez (unos 20-30 s); las siguientes tardan un segundo.",
        "widget.choose": "Elige…",
        # Architecture summary line (ModelConfig.summary)
        "summary.layers_heads": "{layers} capas x {heads} cabezas",
        "summary.kv": " ({n} kv)",
        "summary.pos.learned": "posiciones aprendidas",
        "summary.pos.sinusoidal": "posiciones sinusoidales",
        "summary.pos.rotary": "posiciones rotatorias (RoPE)",
        "summary.pos.alibi": "posiciones ALiBi",
        "summary.pos.none": "sin posiciones",
        "summary.no_norm": "sin normalización",
        "summary.attn_only": "solo atención",
        "summary.attn.multi-head": "atención multi-cabeza",
        "summary.attn.grouped-query": "atención de consultas agrupadas (GQA)",
        "summary.attn.multi-query": "atención multi-consulta (MQA)",
        "sidebar.allowed_dirs": "Carpetas permitidas en este servidor: {dirs}",
        # Classroom server: limits and safe loading
        "error.not_text": "El campo «{field}» debe ser texto. Escribe un texto.",
        "error.text_too_long": "El texto tiene {n} caracteres; este servidor acepta como máximo {limit}. "
        "Usa un texto más corto.",
        "error.no_tokens": "El texto no produce ningún token para este modelo (solo espacios o caracteres que el "
        "tokenizador descarta). Escribe palabras.",
        "error.prompt_over_limit": "El texto tiene {n} tokens; en este servidor el máximo es {limit} (lo fija quien "
        "lo administra con WORKBENCH_MAX_PROMPT_TOKENS). Acórtalo.",
        "error.sweep_too_large": "Este barrido necesita {n} pasadas del modelo; en este servidor el máximo es {limit} "
        "(WORKBENCH_MAX_SWEEP_RUNS). Usa textos más cortos o un barrido por cabezas.",
        "error.out_of_memory": "Se acabó la memoria durante el barrido, incluso con lotes de {rows} pasada(s). "
        "Usa textos más cortos, un barrido más pequeño (por cabezas en vez de por posición) o un modelo más "
        "pequeño; quien administra el servidor puede bajar WORKBENCH_SWEEP_BATCH_ROWS.",
        "error.path_refused": "Este servidor solo abre modelos de sus carpetas permitidas: {dirs}. «{path}» está "
        "fuera de ellas. Elige un modelo incluido o una carpeta dentro de esas (quien administra el servidor las "
        "fija con WORKBENCH_MODEL_DIRS o model_dirs en .streamlit/secrets.toml).",
        "warning.unknown_words": "El modelo no conoce estas palabras y las lee todas como el mismo token "
        "desconocido: {words}.",
        "warning.weights": "Aviso sobre los pesos de este modelo: {detail}",
        "warning.settings": "Ajuste del servidor ignorado (se usa el valor por defecto): {name} = «{value}».",
    },
    "en": {
        "app.title": "Transformer Circuits Workbench",
        "page.attention": "Attention",
        # Sidebar
        "sidebar.language": "Language",
        "sidebar.model_header": "Model",
        "sidebar.model_select": "Shipped model",
        "sidebar.model_select_help": "Models that ship with the project. Used when the folder below is empty.",
        "sidebar.no_models": "No shipped models yet: enter the path of a checkpoint folder below.",
        "sidebar.folder": "Local checkpoint folder",
        "sidebar.folder_help": "Path of a folder with config.json, the weights (safetensors) and the tokenizer. "
        "A .gguf file works too. When filled in, it takes precedence over the shipped model. Press Enter to apply.",
        "sidebar.folder_placeholder": "/path/to/my/checkpoint",
        "sidebar.device_header": "Device and precision",
        "sidebar.device": "Device",
        "sidebar.device_auto": "automatic (GPU if any)",
        "sidebar.device_help": "Where the model runs. Automatic uses the GPU (CUDA) when there is one.",
        "sidebar.dtype": "Precision",
        "sidebar.dtype_help": "float32 gives the reference numbers; bfloat16 and float16 take half the memory "
        "(and are faster on a GPU) at the cost of precision.",
        "sidebar.model_info": "{name} · {family} · {summary} · {n_ctx}-token context · {device}",
        "family.decoder": "decoder",
        "family.encoder": "encoder",
        "family.encoder-decoder": "encoder-decoder",
        # Attention page
        "attention.title": "Attention patterns",
        "attention.intro": "Type a text and pick a layer and an attention head to see its attention pattern: "
        "how much each token (query, vertical axis) attends to each earlier token (key, horizontal axis). "
        "What the head reads from those tokens it writes into the residual stream.",
        "attention.intro_encoder": "Type a text and pick a layer and an attention head to see its attention pattern. "
        "In an encoder attention is bidirectional: each token (query, vertical axis) may attend to every token "
        "(key, horizontal axis), before and after it.",
        "attention.intro_seq2seq": "Encoder-decoder model (Vaswani et al.): the encoder reads the source text with "
        "bidirectional attention; the decoder writes the target text with causal attention and, in every layer, "
        "looks at the source through cross-attention. Pick the kind of attention, the layer and the head.",
        "attention.prompt": "Input text",
        "attention.source": "Source text (encoder)",
        "attention.target": "Target text (decoder)",
        "attention.target_placeholder": "Empty: the model's own output",
        "attention.target_help": "Leave it empty to let the model write its own output (greedy decoding) and see the "
        "attention on it, or type a target text. Press Enter to apply.",
        "attention.generated": "Model output (greedy decoding): '{text}'",
        "attention.given_target": "Target text: '{text}'",
        "attention.view": "View",
        "attention.view.head": "One head",
        "attention.view.layer": "All heads of a layer",
        "attention.view.all": "All layers",
        "attention.layer_range": "Layers",
        "attention.layer_range_help": "This model has too many heads to show at once: pick a range of up to {n} "
        "layers.",
        "attention.layer_range_clipped": "At most {n} layers are shown: {first} to {last}.",
        "attention.all_caption": "{n} attention heads; hover a cell to see its tokens and weight. Rows: layers; "
        "columns: heads.",
        "attention.grid_too_big": "The text has {n} tokens: {heads} patterns of that size do not fit in one "
        "figure. Look at one head at a time (the \"One head\" view) or use a shorter text.",
        "attention.view.detectors": "Head detectors",
        "attention.head_short": "Head {head}",
        "attention.detector": "Detector",
        "attention.detector_help": "Previous: attends to the previous token. Duplicate: to an earlier occurrence of the "
        "same token. Induction: to the token that followed that earlier occurrence. First token: to the first "
        "token (attention sink).",
        "attention.detector_click": "Click a cell to open that attention head's pattern (or pick it below).",
        "attention.detector.previous_token": "Previous token",
        "attention.detector.duplicate_token": "Duplicate token",
        "attention.detector.induction": "Induction",
        "attention.detector.first_token": "First token (sink)",
        "attention.detector_title": "'{detector}' detector: score of every head on this text",
        "attention.score": "Score",
        "attention.goto": "Open a head's pattern",
        "attention.goto_placeholder": "Pick one of the top-scoring heads",
        "attention.kind": "Kind of attention",
        "attention.kind.self": "Self-attention",
        "attention.kind.encoder": "Encoder self-attention",
        "attention.kind.decoder": "Decoder self-attention",
        "attention.kind.cross": "Cross-attention",
        "attention.prompt_help": "Press Ctrl+Enter (or click outside) to apply.",
        "attention.default_prompt": "The cat sat on the mat. The cat sat on the mat.",
        "attention.default_source": "el gato negro come el pescado",
        "attention.layer": "Layer",
        "attention.head": "Attention head",
        "attention.running": "Running the model…",
        "attention.loading_model": "Loading the model…",
        "attention.n_tokens": "{n} tokens",
        # Copy as code
        "code.title": "Copy as code (Python)",
        # Export
        "export.caption": "Export this figure",
        "export.no_browser": "PNG and SVG are drawn by Chromium, which this server does not have (apt-get install "
        "chromium, or BROWSER_PATH set to a Chrome). HTML and CSV work without it.",
        "export.png": "PNG",
        "export.svg": "SVG",
        "export.html": "Interactive HTML",
        "export.csv": "Data (CSV)",
        # Figure
        "figure.title": "Attention pattern · layer {layer}, head {head}",
        "figure.title.encoder": "Encoder self-attention · layer {layer}, head {head}",
        "figure.title.decoder": "Decoder self-attention · layer {layer}, head {head}",
        "figure.title.cross": "Cross-attention (target → source) · layer {layer}, head {head}",
        "figure.grid_title": "Attention patterns of every head · layer {layer}",
        "figure.grid_title.encoder": "Encoder self-attention, every head · layer {layer}",
        "figure.grid_title.decoder": "Decoder self-attention, every head · layer {layer}",
        "figure.grid_title.cross": "Cross-attention, every head · layer {layer}",
        "figure.all_title": "Attention patterns of every head · layers {first} to {last}",
        "figure.all_title.encoder": "Encoder self-attention, every head · layers {first} to {last}",
        "figure.all_title.decoder": "Decoder self-attention, every head · layers {first} to {last}",
        "figure.all_title.cross": "Cross-attention, every head · layers {first} to {last}",
        "figure.query": "Query",
        "figure.key": "Key",
        "figure.weight": "Weight",
        # Ablate & patch page
        "page.interventions": "Ablate & patch",
        "interventions.title": "Ablation and activation patching",
        "interventions.intro": "Intervene while the model runs: switch attention heads off (ablation) and see its "
        "predictions change, or copy activations from a clean text into a corrupted one (patching) to see which "
        "components carry the behaviour.",
        "interventions.tab_ablate": "Ablation",
        "interventions.seq2seq_intro": "Encoder-decoder model: switch off attention heads (their output z becomes "
        "0) of the encoder (EL), the decoder (DL) or the cross-attention (CL) and see how the translation changes, "
        "and how much probability the normal translation loses.",
        "interventions.seq2seq_heads_help": "EL0H1 = encoder, layer 0, head 1; DL = decoder self-attention; CL = "
        "cross-attention. You can pick several.",
        "interventions.seq2seq_nothing": "Nothing ablated: pick heads above to see the ablated translation.",
        "interventions.translation_normal": "Normal translation: '{text}'",
        "interventions.translation_ablated": "With {items} zeroed: '{text}'",
        "interventions.translation_probs_title": "Probability of each token of the normal translation: normal vs "
        "ablated",
        "interventions.patch_decoder_only": "Activation patching on this page works with decoder models; '{name}' "
        "is an encoder-decoder. Try the ablation tab, or pick a decoder model (induction-2l, smollm2-135m-instruct).",
        "interventions.tab_patch": "Activation patching",
        "interventions.default_prompt": "When Mary and John went to the store, John gave a drink to",
        "interventions.heads": "Attention heads to ablate",
        "interventions.heads_help": "L1H3 = layer 1, head 3. You can pick several at once.",
        "interventions.kind": "Kind of ablation",
        "interventions.kind.zero": "Zero",
        "interventions.kind.mean": "Mean",
        "interventions.kind.resample": "Resample",
        "interventions.reference": "Reference text",
        "interventions.reference_help": "The mean (or the resampled values) come from this text's activations. "
        "For resampling it needs the same number of tokens as the input text.",
        "interventions.loss_clean": "Normal loss",
        "interventions.loss_ablated": "Loss with ablation",
        "interventions.kl": "KL(normal ‖ ablated), last token",
        "interventions.predictions_title": "Next token: normal vs ablated",
        "interventions.normal": "Normal",
        "interventions.ablated": "Ablated",
        "interventions.probability": "Probability",
        "interventions.patch_intro": "Denoising patching: the corrupted text runs and, in each component, its "
        "activation is copied from the clean text. Metric: logit difference (answer − wrong) at the last token, "
        "normalized: 1 = clean behaviour restored, 0 = corrupted.",
        "interventions.clean": "Clean text",
        "interventions.corrupted": "Corrupted text (same number of tokens)",
        "interventions.answer": "Correct answer",
        "interventions.wrong": "Wrong answer",
        "interventions.token_help": "One token, with its leading space if it has one (e.g. ' Mary').",
        "interventions.default_clean": "When Mary and John went to the store, John gave a drink to",
        "interventions.default_corrupted": "When Mary and John went to the store, Mary gave a drink to",
        "interventions.default_answer": " Mary",
        "interventions.default_wrong": " John",
        "interventions.sweep": "Sweep",
        "interventions.sweep.resid_pre": "Residual stream (layer × position)",
        "interventions.sweep.attn_out": "Attention output (layer × position)",
        "interventions.sweep.mlp_out": "MLP output (layer × position)",
        "interventions.sweep.head_out": "Each head's output (layer × head)",
        "interventions.sweep.attribution_head_out": "Attribution patching: heads (approximate, fast)",
        "interventions.sweep.attribution_resid_pre": "Attribution patching: residual stream (approximate, fast)",
        "interventions.sweep.path_head_to_logits": "Path patching: each head → logits directly (share of the "
        "effect it carries)",
        "interventions.run": "Run sweep",
        "interventions.cancel": "Cancel",
        "interventions.cancelled": "Sweep cancelled. Press 'Run sweep' to start it again.",
        "interventions.running": "Patching…",
        "interventions.progress": "Patching: {done} of {total}",
        "interventions.press_run": "Press 'Run sweep' to compute it.",
        "interventions.metric_values": "Logit difference: clean {clean:.3f}, corrupted {corrupted:.3f}",
        "interventions.position": "Position",
        "interventions.restored": "Restored",
        "interventions.layers": "Whole layers to ablate",
        "interventions.layers_help": "ATTN1 = all of layer 1's attention (its heads and the bias b_O); "
        "MLP1 = layer 1's multilayer perceptron (MLP).",
        "interventions.neurons": "MLP neurons to ablate",
        "interventions.neurons_help": "Write L<layer>N<neuron>, separated by commas: L0N12, L1N5. This model has "
        "layers 0..{n_layers} and neurons 0..{d_mlp} in each MLP.",
        "interventions.nothing_ablated": "Nothing ablated: pick heads, layers or neurons above. These are the "
        "model's normal predictions.",
        "interventions.ablated_list": "Ablated ({kind}): {items}",
        # Residual stream page
        "page.residual": "Residual stream",
        "residual.title": "Residual stream",
        "residual.intro": "The residual stream is a communication channel: every layer reads from it and writes "
        "into it. The logit lens reads the stream after each layer as if it were the last; direct logit "
        "attribution splits the final logit among the layers and attention heads that wrote it.",
        "residual.default_prompt": "The capital of France is",
        "residual.default_answer": " Paris",
        "residual.tab_lens": "Logit lens",
        "residual.tab_dla": "Direct logit attribution",
        "residual.decoder_text": "Translation so far (decoder)",
        "residual.decoder_text_help": "What the decoder has written so far; its residual stream is read at those positions and predicts the next word. Empty: the start token alone.",
        "residual.dla_cross_heads": "Direct attribution per cross-attention head",
        "residual.tab_decomposition": "Residual stream decomposition",
        "residual.rank_title": "Rank of '{token}' at the last position, layer by layer (1 = the top token)",
        "residual.rank": "Rank",
        "residual.group": "Group",
        "residual.group.component": "Per component (each head, each MLP)",
        "residual.group.layer": "Per layer",
        "residual.last_position": "last token ({position})",
        "residual.share": "Share of the residual stream",
        "residual.decomposition_title": "What each component wrote into the final residual stream · position "
        "{position}",
        "residual.decomposition_identity": "Each bar is ⟨component, r⟩/‖r‖², the part of the final residual stream "
        "r along its own direction: they sum to {total:.4f} (= 1). ‖r‖ = {norm:.3f}; the components add up to r "
        "within {error:.1e} (rounding).",
        "residual.target": "Token to follow (optional)",
        "residual.target_help": "One token, with its leading space if it has one. Empty: the model's final "
        "prediction at the last position.",
        "residual.first_top1": "'{token}' is the top token at the last position from layer {layer} on.",
        "residual.never": "(none)",
        "residual.lens_title": "Logit lens: top token per layer and position (colour: probability of '{token}')",
        "residual.target_prob": "P('{token}')",
        "residual.wrong_optional": "Wrong answer (optional: logit difference)",
        "residual.identity": "Sum of attributions {total:.4f} + constant {constant:.4f} = logit {logit:.4f}",
        "residual.dla_layers": "Direct attribution per layer (embed = embeddings)",
        "residual.dla_heads": "Direct attribution per attention head",
        "residual.attribution": "Attribution",
        "residual.neurons_header": "Direct logit attribution per neuron",
        "residual.neuron_layer": "MLP layer",
        "residual.neuron_k": "Neurons to show (largest |attribution|)",
        "residual.neurons_title": "The {k} neurons of layer {layer}'s MLP with the largest |direct logit "
        "attribution| (last position)",
        "residual.neuron": "Neuron",
        "residual.neuron_identity": "Sum over all {n} neurons of layer {layer}: {total:.4f}; layer {layer}'s MLP "
        "in the attribution above: {mlp:.4f} (without the bias b_out).",
        "residual.no_neurons": "'{name}' is attention-only: it has no MLP neurons to attribute logits to.",
        # Circuits page
        "page.circuits": "QK/OV circuits",
        "circuits.title": "QK and OV circuits",
        "circuits.intro": "Each attention head is a QK circuit, which decides where to look, and an OV circuit, "
        "which decides what to move into the residual stream (Elhage et al. 2021). Read here from the weights, "
        "without running any text.",
        "circuits.tab_head": "One head",
        "circuits.tab_copying": "Copying (OV eigenvalues)",
        "circuits.tab_composition": "Q/K/V composition",
        "circuits.tokens": "Tokens to show",
        "circuits.source_tokens": "Source tokens (encoder)",
        "circuits.target_tokens": "Target tokens (decoder)",
        "circuits.default_target_tokens": "the black cat eats the fish",
        "circuits.no_ov": "{name} has no unembedding (an encoder without an output head): the OV circuit, copying "
        "and singular directions end at W_U, so only the QK side is shown here.",
        "circuits.tokens_help": "The distinct tokens of this text (at most 40) are the rows and columns.",
        "circuits.default_tokens": "the cat sat on the mat",
        "circuits.qk_title": "QK circuit · layer {layer}, head {head} (W_E W_QK W_Eᵀ)",
        "circuits.ov_title": "OV circuit · layer {layer}, head {head} (W_E W_OV W_U)",
        "circuits.score": "Score",
        "circuits.logit": "Logit",
        "circuits.source": "Attended token (source)",
        "circuits.output": "Output token",
        "circuits.copying_intro": "Copying score: Re(Σλ)/Σ|λ| of the eigenvalues of the full OV circuit. "
        "Near 1: the head copies the token it attends to (induction heads); negative: it suppresses it.",
        "circuits.copying_title": "Copying score of each head",
        "circuits.copying": "Copying",
        "circuits.computing": "Computing…",
        "circuits.mode": "Composition",
        "circuits.baseline": "Baseline of random matrices of the same shape: {mean:.3f} ± {std:.3f}. "
        "The colour shows how far each pair is above that mean.",
        "circuits.top_pairs": "Strongest pairs (writer → reader): {pairs}",
        "circuits.composition_title": "{mode}-composition: writer head (rows) → reader head (columns)",
        "circuits.writer": "Writer head",
        "circuits.reader": "Reader head",
        "circuits.above_baseline": "Above baseline",
        "circuits.view": "View",
        "circuits.view.tokens": "Tokens (QK and OV)",
        "circuits.view.positions": "Positions (positional QK)",
        "circuits.view.svd": "OV singular directions (SVD)",
        "circuits.n_positions": "Positions to show",
        "circuits.n_offsets": "Offsets to show (query position − key position)",
        "circuits.pos_intro": "Positional QK circuit W_pos W_QK W_posᵀ / √d_head: how much a query at each "
        "position attends to a key at each position through their positions alone. Blank cells are keys after "
        "the query, which a causal model never sees.",
        "circuits.pos_title": "Positional QK circuit · layer {layer}, head {head} (W_pos W_QK W_posᵀ)",
        "circuits.query_pos": "Query position",
        "circuits.key_pos": "Key position",
        "circuits.probe": "Probe text (rotary positions)",
        "circuits.probe_help": "RoPE has no position table: the head's mean query and mean key over this text are "
        "rotated for each offset.",
        "circuits.default_probe": "the cat sat on the mat and the dog sat on the log",
        "circuits.rotary_intro": "Rotary positions (RoPE): the score depends on positions only through the offset "
        "between query and key. Line: mean query · mean key rotated to that offset; dots: the mean score "
        "observed on the probe text at that offset.",
        "circuits.rotary_title": "Rotary head · layer {layer}, head {head}: score by offset",
        "circuits.offset": "Offset (query − key)",
        "circuits.mean_qk": "Mean query · mean key (rotated)",
        "circuits.observed": "Mean score observed on the probe",
        "circuits.alibi_title": "ALiBi bias · layer {layer}, head {head}: −m·offset",
        "circuits.alibi_slope": "ALiBi slope of this head: m = {slope:.4g}. A key d positions from the query gets "
        "−{slope:.4g}·d added to its score, whatever the tokens.",
        "circuits.bias": "Bias",
        "circuits.no_positions": "'{name}' has no positional parameters: its heads see order only through the "
        "causal mask, so there is no positional QK circuit to show.",
        "circuits.n_directions": "Singular directions to show",
        "circuits.svd_intro": "W_V W_O = U·diag(σ)·Vᵀ. Each direction reads from the residual stream the tokens "
        "whose embeddings point along u ('reads' column) and raises the logits of the tokens along v ('writes' "
        "column); the opposite ends lead to each other.",
        "circuits.svd_title": "Singular values of the OV matrix · layer {layer}, head {head}",
        "circuits.singular_value": "Singular value",
        "circuits.direction": "Direction",
        "circuits.reads": "Reads (tokens)",
        "circuits.writes": "Writes (raises the logit of)",
        "circuits.reads_opposite": "Reads (opposite end)",
        "circuits.writes_opposite": "Writes (lowers the logit of)",
        # Model page
        "page.model": "Model",
        "model.title": "Model architecture",
        "model.intro": "The model as the lecture draws it: embedding and positional encoding, residual blocks "
        "(attention heads and a multilayer perceptron writing into the residual stream) and unembedding. Each "
        "part shows its equation, its hook name and the shape of its tensor on the text below.",
        "model.prompt": "Text for the shapes",
        "model.prompt_help": "The shapes [batch, position, ...] are computed on this text. Press Enter to apply.",
        "model.layers": "× {n} layers (layer 0 shown)",
        "model.download_dot": "Download the diagram (Graphviz .dot)",
        "model.col.stage": "Part",
        "model.col.equation": "Equation",
        "model.col.hook": "Hook",
        "model.col.shape": "Shape",
        "model.shapes_note": "Shapes: batch × position × dimension; heads add a head axis; the attention pattern "
        "is batch × head × query × key.",
        "model.stage.embed": "Embedding",
        "model.stage.pos_sinusoidal": "Sinusoidal positional encoding",
        "model.stage.pos_standard": "Learned positions",
        "model.stage.pos_rotary": "Rotary positions (RoPE)",
        "model.stage.pos_alibi": "ALiBi",
        "model.stage.pos_none": "No positions",
        "model.stage.resid": "Residual stream",
        "model.stage.q": "Queries",
        "model.stage.k": "Keys",
        "model.stage.v": "Values",
        "model.stage.pattern": "Attention pattern",
        "model.stage.z": "Each head's output",
        "model.stage.attn_out": "Added to the residual stream",
        "model.stage.cross_pattern": "Cross-attention",
        "model.stage.mlp_post": "Multilayer perceptron",
        "model.stage.mlp_out": "MLP added to the residual stream",
        "model.stage.final": "Final normalization",
        "model.stage.logits": "Unembedding",
        # Errors: each says what went wrong and what to do.
        "error.detectors_single_stack": "The head detectors of this view are for decoder or encoder models; with "
        "'{name}' use the one-head or one-layer view.",
        "error.head_out_of_range": "That layer or head does not exist: the model has layers 0..{n_layers} and "
        "heads 0..{n_heads}. Pick another.",
        "error.no_logits": "The model '{name}' has no output head (hidden states only), so there are no logits "
        "to show. Pick a model with a language-model head.",
        "error.decoder_only": "This view works with decoder models; '{name}' is not one. "
        "Pick a decoder model (e.g. induction-2l or smollm2-135m-instruct).",
        "error.no_reference": "Mean and resample ablation need a reference text: type one above.",
        "error.reference_length": "For resampling the reference text must have {n} tokens like the input; it has {m}. "
        "Swap words for others of the same length, or use mean ablation.",
        "error.not_one_token": "'{text}' is not a single token for this model ({field}). Try another word, or add "
        "or remove the leading space.",
        "error.length_mismatch": "The clean text has {n} tokens and the corrupted one {m}: patching copies activations "
        "position by position, so they need the same number. Swap a name for another of the same token length.",
        "error.no_difference": "The metric is the same on the clean and the corrupted text, so there is nothing to "
        "restore. Change the corrupted text or the answers.",
        "error.no_model": "No model is selected. Pick a shipped model in the sidebar "
        "or enter the path of a checkpoint folder.",
        "error.folder_missing": "The folder '{path}' does not exist. Check the path in the sidebar "
        "(it must be a folder with config.json and the model weights).",
        "error.not_a_folder": "'{path}' is not a folder. Enter the path of the folder that holds "
        "config.json and the weights (or of a .gguf file), not of another file.",
        "error.model_load": "Could not load the model '{name}': {detail} "
        "Pick another model or fix the folder in the sidebar.",
        "error.empty_prompt": "The input text is empty. Type some text to see the attention patterns.",
        "error.no_tokenizer": "The model '{name}' has no tokenizer, so it cannot turn text into tokens. "
        "Use a checkpoint that includes tokenizer.json.",
        "error.prompt_too_long": "The text has {n} tokens, but the model accepts at most {n_ctx}. Shorten it.",
        "error.forward": "The model failed on this text: {detail} Try another text or another model.",
        "error.neuron_syntax": "'{item}' is not a neuron name. Write each neuron as L<layer>N<neuron> "
        "(for example L0N12), separated by commas.",
        "error.neuron_out_of_range": "Neuron '{item}' does not exist: this model has layers 0..{n_layers} and "
        "neurons 0..{d_mlp} in each MLP. Fix the number.",
        "error.no_mlp": "The model '{name}' is attention-only: it has no MLP and no neurons. Remove MLP layers or "
        "neurons, or pick a model with MLPs.",
        "error.layer_out_of_range": "That layer does not exist: the model has layers 0..{n_layers}. Pick another.",
        "error.unknown_head": "'{item}' is not a head of this model. Pick one from the list.",
        "error.seq2seq_only": "This view is for encoder-decoder models.",
        "error.position_out_of_range": "That position does not exist: the text has positions 0..{n}. Pick another.",
        "loading.progress": "Loading the model… {seconds} s. The first load of a GGUF model converts it once "
        "(about 20-30 s); later loads take a second.",
        "widget.choose": "Choose…",
        # Architecture summary line (ModelConfig.summary)
        "summary.layers_heads": "{layers} layers x {heads} heads",
        "summary.kv": " ({n} kv)",
        "summary.pos.learned": "learned positions",
        "summary.pos.sinusoidal": "sinusoidal positions",
        "summary.pos.rotary": "rotary positions (RoPE)",
        "summary.pos.alibi": "ALiBi positions",
        "summary.pos.none": "no positions",
        "summary.no_norm": "no normalization",
        "summary.attn_only": "attention only",
        "summary.attn.multi-head": "multi-head attention",
        "summary.attn.grouped-query": "grouped-query attention (GQA)",
        "summary.attn.multi-query": "multi-query attention (MQA)",
        "sidebar.allowed_dirs": "Folders this server allows: {dirs}",
        # Classroom server: limits and safe loading
        "error.not_text": "The field '{field}' must be text. Type some text.",
        "error.text_too_long": "The text has {n} characters; this server accepts at most {limit}. Use a shorter text.",
        "error.no_tokens": "The text gives no tokens for this model (only spaces or characters the tokenizer drops). "
        "Type some words.",
        "error.prompt_over_limit": "The text has {n} tokens; this server allows at most {limit} (set by its "
        "administrator with WORKBENCH_MAX_PROMPT_TOKENS). Shorten it.",
        "error.sweep_too_large": "This sweep needs {n} runs of the model; this server allows at most {limit} "
        "(WORKBENCH_MAX_SWEEP_RUNS). Use shorter texts or a sweep over heads.",
        "error.out_of_memory": "Memory ran out during the sweep, even with batches of {rows} run(s). Use shorter "
        "texts, a smaller sweep (over heads instead of positions) or a smaller model; the server's administrator can "
        "lower WORKBENCH_SWEEP_BATCH_ROWS.",
        "error.path_refused": "This server only opens models from its allowed folders: {dirs}. '{path}' is outside "
        "them. Pick a shipped model or a folder inside those (the server's administrator sets them with "
        "WORKBENCH_MODEL_DIRS or model_dirs in .streamlit/secrets.toml).",
        "warning.unknown_words": "The model does not know these words and reads them all as the same unknown "
        "token: {words}.",
        "warning.weights": "Warning about this model's weights: {detail}",
        "warning.settings": "Server setting ignored (the default is used): {name} = '{value}'.",
    },
}

LANGUAGES: tuple[str, ...] = tuple(STRINGS)


def t(key: str, lang: str = DEFAULT_LANG, **kwargs: object) -> str:
    """The UI string ``key`` in ``lang``, with ``{placeholders}`` filled from ``kwargs``.

    Unknown languages fall back to the default one; an unknown key raises
    ``KeyError`` (a missing translation is a bug, caught by the tests).
    """
    table = STRINGS.get(lang, STRINGS[DEFAULT_LANG])
    text = table[key]
    return text.format(**kwargs) if kwargs else text


def translator(lang: str) -> Callable[..., str]:
    """``tr(key, **kwargs)`` bound to one language."""

    def tr(key: str, **kwargs: object) -> str:
        return t(key, lang, **kwargs)

    return tr
