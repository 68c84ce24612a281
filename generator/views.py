from __future__ import annotations

import logging
import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import get_conditional_response
from django.utils.http import quote_etag

from generator import actions, budget, limits, providers, remaining
from generator.cards import FIELDS as CARD_FIELDS
from generator.cards import card_version, render_card, render_cards
from generator.forms import GenerationForm
from generator.models import AIModel, Generation
from generator.models.validation import fill_template, template_names

RECENT = 8

logger = logging.getLogger(__name__)


def get_generation_for_user(
    request: HttpRequest, public_id: str, queryset: QuerySet[Generation] | None = None
) -> Generation:
    """The one ownership check: another user's generation is a 404, never a 403. `queryset`
    narrows what is loaded (by default the row with its model and images)."""
    if queryset is None:
        queryset = Generation.objects.select_related("model").prefetch_related("images")
    return get_object_or_404(queryset, public_id=public_id, user=request.user)


def _model_options() -> dict:
    """Per-model options for the form's script (which hides what a model does not take)."""
    return {
        m.slug: {
            "sizes": m.sizes,
            "aspect_ratios": m.aspect_ratios,
            "max_images": m.max_images,
            "negative_prompt": m.supports_negative_prompt,
            "seed": m.supports_seed,
            "prompt_max_length": m.prompt_max_length,
            "defaults": m.defaults,
            "offline": providers.is_offline(m.provider),
            "input_image": m.accepts_input_image,
            "template": template_names(m.prompt_template),
            "template_choices": m.template_choices or {},
        }
        for m in AIModel.objects.enabled()
    }


def _wants_api_answer(request: HttpRequest) -> bool:
    return bool(request.headers.get("HX-Request")) or "application/json" in request.headers.get(
        "Accept", ""
    )


def _allowances(user) -> list[dict]:
    """What is left per model with a limit, for the prompt page's fair-use block."""
    rows = []
    for a in limits.allowances(user):
        remote = _provider_remaining(user, a.model)
        if a.limits.unlimited and remote is None:
            continue
        rows.append({"allowance": a, "provider_remaining": remote})
    return rows


def _provider_remaining(user, model: AIModel) -> int | None:
    """What the provider says is left today, where its adapter can tell (Meteron's
    `remaining(tag, remote_id)`): read from the cache only; a miss asks a worker to look it up
    (generator.remaining), so a provider that hangs never slows the page. None when unknown."""
    if not remaining.reports_remaining(model):
        return None
    value = remaining.cached(user, model)
    if value is remaining.MISSING:
        if remaining.claim_refresh(user, model):
            try:
                remaining.refresh_remaining.delay(model.pk, user.pk)
            except Exception:  # a broker that is down must not break the page
                logger.warning("Could not ask for the remaining lookup of %s", model.slug)
        value = remaining.cached(user, model)  # filled at once where tasks run eagerly
    return None if value is remaining.MISSING else value


def _reuse_initial(request: HttpRequest, public_id: str) -> dict:
    """The form's initial values from one of the user's generations (`/?reuse=<id>`)."""
    gen = get_generation_for_user(request, public_id)
    options = gen.options or {}
    initial = {
        "model": gen.model.slug,
        "prompt": gen.prompt,
        "negative_prompt": gen.negative_prompt,
        "size": options.get("size", ""),
        "aspect_ratio": options.get("aspect_ratio", ""),
        "num_images": gen.num_images,
        "seed": gen.seed,
    }
    template = options.get("template") or {}
    if template:
        # The prompt was built from the choices: prefill those, and only the typed extra.
        built = fill_template(gen.model.prompt_template, template)
        initial["prompt"] = (
            gen.prompt[len(built) + 2 :] if gen.prompt.startswith(built + ", ") else ""
        )
        initial.update({f"tpl_{k}": v for k, v in template.items()})
    return initial


@login_required
def home(request: HttpRequest) -> HttpResponse:
    status = 200
    if request.method == "POST":
        form = GenerationForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                gen, created = actions.submit(request.user, form.cleaned_data)
            except limits.LimitExceeded as exc:
                if _wants_api_answer(request):
                    return JsonResponse({"error": exc.message}, status=exc.status)
                form.add_error(None, exc.message)
                status = exc.status
            else:
                if created:
                    messages.success(request, "Queued. It will start in a moment.")
                return redirect(f"/?new={gen.public_id}")
        else:
            status = 400
    else:
        initial = {"idempotency_key": uuid.uuid4().hex}
        if request.GET.get("reuse"):
            initial.update(_reuse_initial(request, request.GET["reuse"]))
        form = GenerationForm(initial=initial)
    recent = list(
        Generation.objects.for_user(request.user)
        .select_related("model")
        .only(*CARD_FIELDS)
        .newest_first()[:RECENT]
    )
    context = {
        "form": form,
        "recent": render_cards(recent)[0],
        "model_options": _model_options(),
        "new_id": request.GET.get("new", ""),
        "allowances": _allowances(request.user),
        "budget_summary": budget.summary(request.user),
    }
    return render(request, "generator/home.html", context, status=status)


@login_required
def card(request: HttpRequest, public_id: str) -> HttpResponse:
    """One generation's card, re-fetched by the page while the generation is not final:
    the one row with what a card shows (a finished card then loads its images, if any).

    The card of a generation still at work carries an ETag of the row's state, and the
    browser asks again with it (`no-cache`): most polls find nothing changed since the last
    second and get a 304 without the card being rendered. A finished card has none, as its
    presigned image URLs expire; the page stops polling it anyway.
    """
    gen = get_generation_for_user(
        request, public_id, Generation.objects.select_related("model").only(*CARD_FIELDS)
    )
    etag = None
    if not gen.is_final:
        etag = quote_etag(card_version(gen))
        not_modified = get_conditional_response(request, etag=etag)
        if not_modified is not None:
            return not_modified
    response = HttpResponse(render_card(gen))
    if etag:
        response["ETag"] = etag
        response["Cache-Control"] = "private, no-cache"
    return response
