"""The wording of the payment-link message, one :class:`Template` per language.

Phrases are plain ``str.format`` strings with the fields ``store``, ``amount``,
``reference``, ``expiry`` and ``url``; :mod:`workers.notifications.render` escapes the
values for HTML. Every SMS phrase is written in GSM-7 (ä ö å æ ø ü ß are GSM-7) so the
fixed text never forces UCS-2, and the link goes last so no punctuation sticks to it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True, slots=True)
class Template:
    #: BCP 47 tag for ``<html lang>``.
    language: str
    subject: str
    greeting: str
    intro: str
    reference: str
    call_to_action: str
    expiry: str
    closing: str
    sign_off: str
    #: How the language joins a date and a time ("{date} at {time}").
    date_time: str
    sms: str
    #: Last resort when even a truncated store name leaves no room for the expiry.
    sms_compact: str
    #: The reminder before expiry (a store setting): its subject, intro and SMS.
    reminder_subject: str
    reminder_intro: str
    reminder_sms: str

    def as_reminder(self) -> Template:
        """The same message, worded as the reminder of a link the customer already has."""
        return replace(
            self, subject=self.reminder_subject, intro=self.reminder_intro, sms=self.reminder_sms
        )


ENGLISH = Template(
    language="en",
    subject="Your payment link from {store}",
    greeting="Hello,",
    intro="{store} has sent you a link to pay for your order of {amount}.",
    reference="Order reference: {reference}",
    call_to_action="Pay now",
    expiry="The link is valid until {expiry}.",
    closing="If you weren't expecting this message, you can safely ignore it.",
    sign_off="Kind regards,",
    date_time="{date} at {time}",
    sms="{store}: Your payment link for {amount}, valid until {expiry}: {url}",
    sms_compact="{store}: Pay {amount}: {url}",
    reminder_subject="Reminder: your payment link from {store}",
    reminder_intro="{store} sent you a link to pay for your order of {amount}. It expires soon.",
    reminder_sms="{store}: Reminder: your payment link for {amount} is valid until {expiry}: {url}",
)

SWEDISH = Template(
    language="sv",
    subject="Din betalningslänk från {store}",
    greeting="Hej!",
    intro="{store} har skickat en länk för att betala din beställning på {amount}.",
    reference="Orderreferens: {reference}",
    call_to_action="Betala nu",
    expiry="Länken är giltig till {expiry}.",
    closing="Om du inte väntade dig det här meddelandet kan du bortse från det.",
    sign_off="Vänliga hälsningar",
    date_time="{date} kl. {time}",
    sms="{store}: Din betalningslänk för {amount}, giltig till {expiry}: {url}",
    sms_compact="{store}: Betala {amount}: {url}",
    reminder_subject="Påminnelse: din betalningslänk från {store}",
    reminder_intro="{store} har skickat en länk för att betala din beställning på {amount}. Den går snart ut.",
    reminder_sms="{store}: Påminnelse: din betalningslänk för {amount} gäller till {expiry}: {url}",
)

NORWEGIAN_BOKMAL = Template(
    language="nb",
    subject="Betalingslenke fra {store}",
    greeting="Hei!",
    intro="{store} har sendt deg en lenke for å betale bestillingen din på {amount}.",
    reference="Ordrereferanse: {reference}",
    call_to_action="Betal nå",
    expiry="Lenken er gyldig til {expiry}.",
    closing="Hvis du ikke ventet denne meldingen, kan du se bort fra den.",
    sign_off="Vennlig hilsen",
    date_time="{date} kl. {time}",
    sms="{store}: Din betalingslenke for {amount}, gyldig til {expiry}: {url}",
    sms_compact="{store}: Betal {amount}: {url}",
    reminder_subject="Påminnelse: betalingslenke fra {store}",
    reminder_intro="{store} har sendt deg en lenke for å betale bestillingen din på {amount}. Den utløper snart.",
    reminder_sms="{store}: Påminnelse: betalingslenken din for {amount} er gyldig til {expiry}: {url}",
)

DANISH = Template(
    language="da",
    subject="Betalingslink fra {store}",
    greeting="Hej,",
    intro="{store} har sendt dig et link til betaling af din ordre på {amount}.",
    reference="Ordrereference: {reference}",
    call_to_action="Betal nu",
    expiry="Linket er gyldigt indtil {expiry}.",
    closing="Hvis du ikke forventede denne besked, kan du se bort fra den.",
    sign_off="Venlig hilsen",
    date_time="{date} kl. {time}",
    sms="{store}: Dit betalingslink på {amount}, gyldigt til {expiry}: {url}",
    sms_compact="{store}: Betal {amount}: {url}",
    reminder_subject="Påmindelse: betalingslink fra {store}",
    reminder_intro="{store} har sendt dig et link til betaling af din ordre på {amount}. Det udløber snart.",
    reminder_sms="{store}: Påmindelse: dit betalingslink på {amount} er gyldigt til {expiry}: {url}",
)

FINNISH = Template(
    language="fi",
    subject="{store} lähetti sinulle maksulinkin",
    greeting="Hei!",
    intro="{store} on lähettänyt sinulle maksulinkin tilaukseesi, jonka summa on {amount}.",
    reference="Tilausviite: {reference}",
    call_to_action="Maksa nyt",
    expiry="Linkki on voimassa {expiry} asti.",
    closing="Jos et odottanut tätä viestiä, voit jättää sen huomiotta.",
    sign_off="Ystävällisin terveisin",
    date_time="{date} klo {time}",
    sms="{store}: Maksulinkkisi ({amount}) on voimassa {expiry} asti: {url}",
    sms_compact="{store}: Maksa {amount}: {url}",
    reminder_subject="Muistutus: {store} lähetti sinulle maksulinkin",
    reminder_intro="{store} on lähettänyt sinulle maksulinkin tilaukseesi, jonka summa on {amount}. Linkki vanhenee pian.",
    reminder_sms="{store}: Muistutus: maksulinkkisi ({amount}) on voimassa {expiry} asti: {url}",
)

GERMAN = Template(
    language="de",
    subject="Ihr Zahlungslink von {store}",
    greeting="Guten Tag,",
    intro="{store} hat Ihnen einen Link zur Bezahlung Ihrer Bestellung über {amount} gesendet.",
    reference="Bestellnummer: {reference}",
    call_to_action="Jetzt bezahlen",
    expiry="Der Link ist gültig bis {expiry}.",
    closing="Falls Sie diese Nachricht nicht erwartet haben, können Sie sie ignorieren.",
    sign_off="Mit freundlichen Grüßen",
    date_time="{date} um {time}",
    sms="{store}: Ihr Zahlungslink über {amount}, gültig bis {expiry}: {url}",
    sms_compact="{store}: {amount} bezahlen: {url}",
    reminder_subject="Erinnerung: Ihr Zahlungslink von {store}",
    reminder_intro="{store} hat Ihnen einen Link zur Bezahlung Ihrer Bestellung über {amount} gesendet. Er läuft bald ab.",
    reminder_sms="{store}: Erinnerung: Ihr Zahlungslink über {amount} ist gültig bis {expiry}: {url}",
)


def _swiss(template: Template) -> Template:
    """Swiss Standard German: same words, but "ss" where Germany writes "ß"."""
    changes = {
        field.name: getattr(template, field.name).replace("ß", "ss") for field in fields(template)
    }
    changes["language"] = "de-CH"
    return replace(template, **changes)


SWISS_GERMAN = _swiss(GERMAN)

#: Keyed by locale first (regional wording), then by language.
TEMPLATES: dict[str, Template] = {
    "de_CH": SWISS_GERMAN,
    "en": ENGLISH,
    "sv": SWEDISH,
    "nb": NORWEGIAN_BOKMAL,
    "da": DANISH,
    "fi": FINNISH,
    "de": GERMAN,
}


def template_for(locale_tag: str) -> Template:
    """The regional template if there is one, else the language's, else English."""
    language = locale_tag.split("_", 1)[0]
    return TEMPLATES.get(locale_tag) or TEMPLATES.get(language) or ENGLISH
