"""Django admin for the clinical app.

API clients: creating one shows its token and webhook secret ONCE (a message on the next
page); only hashes and a public prefix stay visible. Revoke and rotate are actions.
Webhook deliveries are a read-only log (with a redeliver action for failed ones).
Result destinations (where a client's SR is pushed) are edited here through the audited
service; their password or token is write-only. Result deliveries are a read-only log like
the webhooks', with a redeliver action.
Studies, images, predictions and reviews are read-only here: changes go through the
audited services and pages, never through admin forms.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from clinical.models import (
    ApiClient,
    Image,
    Prediction,
    ResultDelivery,
    ResultDestination,
    Review,
    Study,
    WebhookDelivery,
)
from clinical.services.api_clients import api_client_create, api_client_revoke, api_client_rotate_token
from clinical.services.result_delivery import result_destination_check, result_destination_save, result_redeliver
from clinical.services.webhooks import webhook_redeliver
from radviewer.lib.admin import ReadOnlyAdmin


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiClient.Scope.choices, widget=forms.CheckboxSelectMultiple)
    allowed_callback_hosts = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One host per line (exact, or *.example.org); empty = any host that passes the checks.",
    )
    default_callback_url = forms.URLField(required=False, max_length=500, assume_scheme="https")

    class Meta:
        model = ApiClient
        fields = ("name", "scopes", "active", "rate_limit_per_minute", "allowed_callback_hosts",
                  "allow_private_callbacks", "default_callback_url")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["allowed_callback_hosts"] = "\n".join(self.instance.allowed_callback_hosts or [])

    def clean_allowed_callback_hosts(self) -> list[str]:
        return [h.strip().lower() for h in self.cleaned_data["allowed_callback_hosts"].splitlines() if h.strip()]


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    form = ApiClientForm
    list_display = ("name", "token_prefix", "scope_list", "active", "rate_limit_per_minute", "last_used_at",
                    "deliveries_link", "result_deliveries_link")
    list_filter = ("active",)
    search_fields = ("name", "token_prefix")
    readonly_fields = ("token_prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke", "rotate_token")

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiClient) -> str:
        return ", ".join(obj.scopes or [])

    @admin.display(description="webhook deliveries")
    def deliveries_link(self, obj: ApiClient) -> str:
        return format_html('<a href="../webhookdelivery/?client__id__exact={}">log</a>', obj.pk)

    @admin.display(description="SR pushed to PACS")
    def result_deliveries_link(self, obj: ApiClient) -> str:
        return format_html('<a href="../resultdestination/?client__id__exact={}">destinations</a> · '
                           '<a href="../resultdelivery/?destination__client__id__exact={}">log</a>', obj.pk, obj.pk)

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: studies and the audit trail refer to the client

    def save_model(self, request, obj: ApiClient, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        issued = api_client_create(
            name=obj.name, scopes=form.cleaned_data["scopes"], rate_limit_per_minute=obj.rate_limit_per_minute,
            allow_private_callbacks=obj.allow_private_callbacks,
            allowed_callback_hosts=form.cleaned_data["allowed_callback_hosts"],
            default_callback_url=obj.default_callback_url, actor=request.user,
        )
        obj.pk = issued.client.pk
        obj.token_prefix = issued.client.token_prefix
        self._show_once(request, issued)

    def _show_once(self, request, issued) -> None:
        messages.warning(request, format_html(
            "Copy these now, they are not shown again. Token for <b>{}</b>: <code>{}</code> "
            "&nbsp; Webhook secret: <code>{}</code>", issued.client.name, issued.token, issued.webhook_secret,
        ))

    @admin.action(description="Revoke selected clients (their tokens stop working at once)")
    def revoke(self, request, queryset) -> None:
        for client in queryset:
            api_client_revoke(client=client, actor=request.user)
        messages.success(request, f"Revoked {queryset.count()} client(s).")

    @admin.action(description="Issue a new token and webhook secret (the old ones stop working)")
    def rotate_token(self, request, queryset) -> None:
        for client in queryset:
            self._show_once(request, api_client_rotate_token(client=client, actor=request.user))


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "client", "study", "event", "status", "attempts", "response_code",
                    "next_attempt_at", "delivered_at")
    list_filter = ("status", "event", "client")
    search_fields = ("study__uid", "url")
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    actions = ("redeliver",)

    @admin.action(description="Redeliver selected failed deliveries")
    def redeliver(self, request, queryset) -> None:
        failed = queryset.filter(status=WebhookDelivery.Status.FAILED)
        for delivery in failed:
            webhook_redeliver(delivery=delivery, actor=request.user)
        messages.success(request, f"Queued {failed.count()} delivery(ies) again.")


class ResultDestinationForm(forms.ModelForm):
    secret = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        label="Password or token",
        help_text="HTTP Basic password or bearer token. Stored sealed and never shown; leave empty to keep "
                  "the current one.",
    )
    clear_secret = forms.BooleanField(required=False, label="Remove the stored password or token")

    class Meta:
        model = ResultDestination
        fields = ("client", "name", "kind", "enabled", "url", "auth", "username", "host", "port", "called_ae",
                  "calling_ae")

    def _post_clean(self) -> None:
        super()._post_clean()  # the instance now holds the form's values
        try:
            result_destination_check(destination=self.instance, secret=self.new_secret())
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)

    def new_secret(self) -> str | None:
        if self.cleaned_data.get("clear_secret"):
            return ""
        return self.cleaned_data.get("secret") or None


@admin.register(ResultDestination)
class ResultDestinationAdmin(admin.ModelAdmin):
    form = ResultDestinationForm
    list_display = ("client", "name", "kind", "target", "enabled", "secret_stored", "deliveries_link", "updated_at")
    list_filter = ("kind", "enabled", "client")
    search_fields = ("name", "client__name", "url", "host", "called_ae")
    readonly_fields = ("secret_stored", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("client", "name", "kind", "enabled")}),
        ("DICOMweb STOW-RS", {"fields": ("url", "auth", "username", "secret", "clear_secret", "secret_stored")}),
        ("DICOM C-STORE", {"fields": ("host", "port", "called_ae", "calling_ae")}),
        (None, {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="password/token stored", boolean=True)
    def secret_stored(self, obj: ResultDestination) -> bool:
        return obj.has_secret

    @admin.display(description="deliveries")
    def deliveries_link(self, obj: ResultDestination) -> str:
        return format_html('<a href="../resultdelivery/?destination__id__exact={}">log</a>', obj.pk)

    def has_delete_permission(self, request, obj=None):
        return False  # disable instead: the delivery log refers to it

    def save_model(self, request, obj: ResultDestination, form, change: bool) -> None:
        result_destination_save(destination=obj, secret=form.new_secret(), actor=request.user, request=request)


@admin.register(ResultDelivery)
class ResultDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "destination", "study", "trigger", "status", "attempts", "response",
                    "next_attempt_at", "delivered_at", "short_error")
    list_filter = ("status", "trigger", "destination__client", "destination")
    search_fields = ("study__uid", "sop_instance_uid", "destination__name")
    readonly_fields = [f.name for f in ResultDelivery._meta.fields]
    actions = ("redeliver",)

    @admin.display(description="last error")
    def short_error(self, obj: ResultDelivery) -> str:
        return obj.last_error[:120]

    @admin.action(description="Redeliver selected failed deliveries")
    def redeliver(self, request, queryset) -> None:
        failed = queryset.filter(status=ResultDelivery.Status.FAILED)
        for delivery in failed:
            result_redeliver(delivery=delivery, actor=request.user)
        messages.success(request, f"Queued {failed.count()} delivery(ies) again.")


class ImageInline(admin.TabularInline):
    model = Image
    fields = ("original_name", "format", "width", "height", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Study)
class StudyAdmin(ReadOnlyAdmin):
    list_display = ("uid", "status", "source", "modality", "triage_priority", "top_class", "received_at")
    list_filter = ("status", "source", "scope")
    search_fields = ("uid", "accession_number")
    date_hierarchy = "received_at"
    inlines = (ImageInline,)


@admin.register(Image)
class ImageAdmin(ReadOnlyAdmin):
    list_display = ("id", "study", "original_name", "format", "width", "height", "created_at")
    list_filter = ("format",)
    search_fields = ("study__uid", "sha256")
    exclude = ("file", "display_file")


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdmin):
    list_display = ("id", "image", "model_name", "model_version", "arm", "status", "top_class", "confidence",
                    "created_at")
    list_filter = ("status", "arm", "model_version")
    search_fields = ("image__study__uid",)


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ("id", "image", "verdict", "label", "source", "source_label", "reader", "amendment", "created_at")
    list_filter = ("verdict", "source", "amendment")
    search_fields = ("image__study__uid", "source_label")

