"""What the hosted link page says, one :class:`Wording` per language the emails have.

The page speaks the customer's language: the one their email or SMS was written in
(``workers.notifications``), chosen from the order's purchase country. A page without
an order (an unknown link, too many requests) follows the browser's Accept-Language.
Phrases are ``str.format`` strings; Jinja2 escapes every value.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from babel import Locale

from workers.notifications.formatting import DEFAULT_LOCALE


@dataclass(frozen=True, slots=True)
class Wording:
    #: BCP 47 tag for ``<html lang>``.
    language: str
    title: str
    order_from: str
    reference: str
    item: str
    quantity: str
    amount: str
    discount: str
    total: str
    tax_included: str
    terms: str
    terms_link: str
    deadline: str
    pay: str
    sandbox_notice: str
    sandbox_outcome: str
    outcome_approve: str
    outcome_decline: str
    outcome_error: str
    declined: str
    gateway_error: str
    form_expired: str
    confirming: str
    paid_title: str
    paid: str
    expired_title: str
    expired: str
    superseded_title: str
    superseded: str
    cancelled_title: str
    cancelled: str
    unknown_title: str
    unknown: str
    busy_title: str
    busy: str
    unavailable_title: str
    unavailable: str


ENGLISH = Wording(
    language="en",
    title="Pay your order from {store}",
    order_from="Your order from {store}",
    reference="Order reference: {reference}",
    item="Item",
    quantity="Qty",
    amount="Amount",
    discount="Discount",
    total="Total",
    tax_included="Including VAT {amount}",
    terms="By paying you accept the store's {link}.",
    terms_link="terms and conditions",
    deadline="This link is valid until {expiry}.",
    pay="Pay {amount}",
    sandbox_notice="Test payment: no money is moved.",
    sandbox_outcome="Test outcome",
    outcome_approve="Approve",
    outcome_decline="Decline",
    outcome_error="Payment provider error",
    declined="The payment was declined. Nothing was charged. Try again or use another method.",
    gateway_error="The payment provider did not answer. Nothing was charged. Please try again.",
    form_expired="This form has expired. Reload the page and pay again.",
    confirming="Your payment was approved. We are confirming your order…",
    paid_title="Thank you",
    paid="This order is paid. {store} has your purchase; there is nothing more to do.",
    expired_title="This payment link has expired",
    expired="Payment links are valid for a limited time. Ask {store} to send you a new link.",
    superseded_title="This payment link was replaced",
    superseded="{store} sent you a newer link for this order. Use the link in the latest message.",
    cancelled_title="This order was cancelled",
    cancelled="{store} cancelled this order, so it can no longer be paid. Contact {store} "
    "if you still want to buy.",
    unknown_title="We could not find this payment link",
    unknown="Check that you opened the whole link from your message, or ask the store "
    "to send it again.",
    busy_title="Too many attempts",
    busy="Please wait a minute and try again.",
    unavailable_title="Payment is temporarily unavailable",
    unavailable="Nothing was charged. Please try again in a few minutes.",
)

SWEDISH = Wording(
    language="sv",
    title="Betala din beställning från {store}",
    order_from="Din beställning från {store}",
    reference="Orderreferens: {reference}",
    item="Artikel",
    quantity="Antal",
    amount="Belopp",
    discount="Rabatt",
    total="Totalt",
    tax_included="Varav moms {amount}",
    terms="Genom att betala godkänner du butikens {link}.",
    terms_link="allmänna villkor",
    deadline="Länken är giltig till {expiry}.",
    pay="Betala {amount}",
    sandbox_notice="Testbetalning: inga pengar dras.",
    sandbox_outcome="Testutfall",
    outcome_approve="Godkänn",
    outcome_decline="Neka",
    outcome_error="Fel hos betalleverantören",
    declined="Betalningen nekades. Inget har dragits. Försök igen eller välj ett annat sätt.",
    gateway_error="Betalleverantören svarade inte. Inget har dragits. Försök igen.",
    form_expired="Formuläret har gått ut. Ladda om sidan och betala igen.",
    confirming="Betalningen är godkänd. Vi bekräftar din beställning…",
    paid_title="Tack!",
    paid="Beställningen är betald. {store} har fått ditt köp; du behöver inte göra något mer.",
    expired_title="Betalningslänken har gått ut",
    expired="Betalningslänkar gäller en begränsad tid. Be {store} att skicka en ny länk.",
    superseded_title="Betalningslänken har ersatts",
    superseded="{store} har skickat en nyare länk för beställningen. Använd länken i det "
    "senaste meddelandet.",
    cancelled_title="Beställningen är avbruten",
    cancelled="{store} har avbrutit beställningen, så den kan inte längre betalas. Kontakta "
    "{store} om du fortfarande vill handla.",
    unknown_title="Vi hittar inte betalningslänken",
    unknown="Kontrollera att du öppnade hela länken i meddelandet, eller be butiken att "
    "skicka den igen.",
    busy_title="För många försök",
    busy="Vänta en minut och försök igen.",
    unavailable_title="Betalning är tillfälligt otillgänglig",
    unavailable="Inget har dragits. Försök igen om några minuter.",
)

NORWEGIAN_BOKMAL = Wording(
    language="nb",
    title="Betal bestillingen din fra {store}",
    order_from="Din bestilling fra {store}",
    reference="Ordrereferanse: {reference}",
    item="Vare",
    quantity="Antall",
    amount="Beløp",
    discount="Rabatt",
    total="Totalt",
    tax_included="Herav mva. {amount}",
    terms="Ved å betale godtar du butikkens {link}.",
    terms_link="vilkår",
    deadline="Lenken er gyldig til {expiry}.",
    pay="Betal {amount}",
    sandbox_notice="Testbetaling: ingen penger trekkes.",
    sandbox_outcome="Testutfall",
    outcome_approve="Godkjenn",
    outcome_decline="Avvis",
    outcome_error="Feil hos betalingsleverandøren",
    declined="Betalingen ble avvist. Ingenting er trukket. Prøv igjen eller velg en annen måte.",
    gateway_error="Betalingsleverandøren svarte ikke. Ingenting er trukket. Prøv igjen.",
    form_expired="Skjemaet er utløpt. Last inn siden på nytt og betal igjen.",
    confirming="Betalingen er godkjent. Vi bekrefter bestillingen din…",
    paid_title="Takk!",
    paid="Bestillingen er betalt. {store} har mottatt kjøpet ditt; du trenger ikke gjøre mer.",
    expired_title="Betalingslenken er utløpt",
    expired="Betalingslenker gjelder en begrenset tid. Be {store} om å sende en ny lenke.",
    superseded_title="Betalingslenken er erstattet",
    superseded="{store} har sendt deg en nyere lenke for bestillingen. Bruk lenken i den "
    "nyeste meldingen.",
    cancelled_title="Bestillingen er kansellert",
    cancelled="{store} har kansellert bestillingen, så den kan ikke lenger betales. Kontakt "
    "{store} hvis du fortsatt vil handle.",
    unknown_title="Vi finner ikke betalingslenken",
    unknown="Sjekk at du åpnet hele lenken i meldingen, eller be butikken sende den på nytt.",
    busy_title="For mange forsøk",
    busy="Vent et minutt og prøv igjen.",
    unavailable_title="Betaling er midlertidig utilgjengelig",
    unavailable="Ingenting er trukket. Prøv igjen om noen minutter.",
)

DANISH = Wording(
    language="da",
    title="Betal din ordre fra {store}",
    order_from="Din ordre fra {store}",
    reference="Ordrereference: {reference}",
    item="Vare",
    quantity="Antal",
    amount="Beløb",
    discount="Rabat",
    total="I alt",
    tax_included="Heraf moms {amount}",
    terms="Ved at betale accepterer du butikkens {link}.",
    terms_link="handelsbetingelser",
    deadline="Linket er gyldigt indtil {expiry}.",
    pay="Betal {amount}",
    sandbox_notice="Testbetaling: ingen penge trækkes.",
    sandbox_outcome="Testudfald",
    outcome_approve="Godkend",
    outcome_decline="Afvis",
    outcome_error="Fejl hos betalingsudbyderen",
    declined="Betalingen blev afvist. Intet er trukket. Prøv igen, eller vælg en anden måde.",
    gateway_error="Betalingsudbyderen svarede ikke. Intet er trukket. Prøv igen.",
    form_expired="Formularen er udløbet. Genindlæs siden, og betal igen.",
    confirming="Betalingen er godkendt. Vi bekræfter din ordre…",
    paid_title="Tak!",
    paid="Ordren er betalt. {store} har modtaget dit køb; du skal ikke gøre mere.",
    expired_title="Betalingslinket er udløbet",
    expired="Betalingslinks gælder i begrænset tid. Bed {store} om at sende et nyt link.",
    superseded_title="Betalingslinket er erstattet",
    superseded="{store} har sendt dig et nyere link til ordren. Brug linket i den nyeste besked.",
    cancelled_title="Ordren er annulleret",
    cancelled="{store} har annulleret ordren, så den kan ikke længere betales. Kontakt "
    "{store}, hvis du stadig vil handle.",
    unknown_title="Vi kan ikke finde betalingslinket",
    unknown="Kontrollér, at du åbnede hele linket i beskeden, eller bed butikken sende det igen.",
    busy_title="For mange forsøg",
    busy="Vent et minut, og prøv igen.",
    unavailable_title="Betaling er midlertidigt utilgængelig",
    unavailable="Intet er trukket. Prøv igen om nogle minutter.",
)

FINNISH = Wording(
    language="fi",
    title="Maksa tilauksesi: {store}",
    order_from="Tilauksesi: {store}",
    reference="Tilausviite: {reference}",
    item="Tuote",
    quantity="Määrä",
    amount="Summa",
    discount="Alennus",
    total="Yhteensä",
    tax_included="Sisältää ALV:n {amount}",
    terms="Maksamalla hyväksyt kaupan {link}.",
    terms_link="toimitusehdot",
    deadline="Linkki on voimassa {expiry} asti.",
    pay="Maksa {amount}",
    sandbox_notice="Testimaksu: rahaa ei siirretä.",
    sandbox_outcome="Testin tulos",
    outcome_approve="Hyväksy",
    outcome_decline="Hylkää",
    outcome_error="Maksupalvelun virhe",
    declined="Maksu hylättiin. Mitään ei veloitettu. Yritä uudelleen tai valitse toinen tapa.",
    gateway_error="Maksupalvelu ei vastannut. Mitään ei veloitettu. Yritä uudelleen.",
    form_expired="Lomake on vanhentunut. Lataa sivu uudelleen ja maksa uudestaan.",
    confirming="Maksu hyväksyttiin. Vahvistamme tilaustasi…",
    paid_title="Kiitos!",
    paid="Tilaus on maksettu. {store} on saanut ostoksesi; sinun ei tarvitse tehdä muuta.",
    expired_title="Maksulinkki on vanhentunut",
    expired="Maksulinkit ovat voimassa rajoitetun ajan. Pyydä kauppaa {store} lähettämään "
    "uusi linkki.",
    superseded_title="Maksulinkki on korvattu",
    superseded="{store} lähetti tilaukselle uudemman linkin. Käytä uusimman viestin linkkiä.",
    cancelled_title="Tilaus on peruttu",
    cancelled="{store} perui tilauksen, joten sitä ei voi enää maksaa. Ota yhteyttä kauppaan "
    "{store}, jos haluat yhä ostaa.",
    unknown_title="Maksulinkkiä ei löytynyt",
    unknown="Tarkista, että avasit viestin koko linkin, tai pyydä kauppaa lähettämään se "
    "uudelleen.",
    busy_title="Liian monta yritystä",
    busy="Odota hetki ja yritä uudelleen.",
    unavailable_title="Maksaminen ei ole juuri nyt mahdollista",
    unavailable="Mitään ei veloitettu. Yritä uudelleen muutaman minuutin kuluttua.",
)

GERMAN = Wording(
    language="de",
    title="Ihre Bestellung bei {store} bezahlen",
    order_from="Ihre Bestellung bei {store}",
    reference="Bestellnummer: {reference}",
    item="Artikel",
    quantity="Menge",
    amount="Betrag",
    discount="Rabatt",
    total="Gesamt",
    tax_included="Inkl. MwSt. {amount}",
    terms="Mit der Zahlung akzeptieren Sie die {link} des Shops.",
    terms_link="Allgemeinen Geschäftsbedingungen",
    deadline="Der Link ist gültig bis {expiry}.",
    pay="{amount} bezahlen",
    sandbox_notice="Testzahlung: Es wird kein Geld bewegt.",
    sandbox_outcome="Testergebnis",
    outcome_approve="Genehmigen",
    outcome_decline="Ablehnen",
    outcome_error="Fehler beim Zahlungsanbieter",
    declined="Die Zahlung wurde abgelehnt. Es wurde nichts belastet. Versuchen Sie es erneut "
    "oder wählen Sie eine andere Zahlungsart.",
    gateway_error="Der Zahlungsanbieter hat nicht geantwortet. Es wurde nichts belastet. "
    "Bitte versuchen Sie es erneut.",
    form_expired="Das Formular ist abgelaufen. Laden Sie die Seite neu und zahlen Sie erneut.",
    confirming="Die Zahlung wurde genehmigt. Wir bestätigen Ihre Bestellung…",
    paid_title="Vielen Dank",
    paid="Diese Bestellung ist bezahlt. {store} hat Ihren Kauf erhalten; Sie müssen nichts "
    "weiter tun.",
    expired_title="Dieser Zahlungslink ist abgelaufen",
    expired="Zahlungslinks sind nur begrenzt gültig. Bitten Sie {store} um einen neuen Link.",
    superseded_title="Dieser Zahlungslink wurde ersetzt",
    superseded="{store} hat Ihnen einen neueren Link für diese Bestellung gesendet. Verwenden "
    "Sie den Link aus der neuesten Nachricht.",
    cancelled_title="Diese Bestellung wurde storniert",
    cancelled="{store} hat diese Bestellung storniert; sie kann nicht mehr bezahlt werden. "
    "Wenden Sie sich an {store}, wenn Sie weiterhin kaufen möchten.",
    unknown_title="Wir konnten diesen Zahlungslink nicht finden",
    unknown="Prüfen Sie, ob Sie den vollständigen Link aus Ihrer Nachricht geöffnet haben, "
    "oder bitten Sie den Shop, ihn erneut zu senden.",
    busy_title="Zu viele Versuche",
    busy="Bitte warten Sie eine Minute und versuchen Sie es erneut.",
    unavailable_title="Zahlung vorübergehend nicht möglich",
    unavailable="Es wurde nichts belastet. Bitte versuchen Sie es in einigen Minuten erneut.",
)


def _swiss(wording: Wording) -> Wording:
    """Swiss Standard German: same words, but "ss" where Germany writes "ß"."""
    changes = {
        f.name: getattr(wording, f.name).replace("ß", "ss")
        for f in fields(wording)
        if f.name != "language"
    }
    return replace(wording, language="de-CH", **changes)


SWISS_GERMAN = _swiss(GERMAN)

#: Keyed by locale first (regional wording), then by language, as the emails are.
WORDINGS: dict[str, Wording] = {
    "de_CH": SWISS_GERMAN,
    "en": ENGLISH,
    "sv": SWEDISH,
    "nb": NORWEGIAN_BOKMAL,
    "da": DANISH,
    "fi": FINNISH,
    "de": GERMAN,
}

#: Locales offered to a browser's Accept-Language; for a bare "de", Germany's.
_NEGOTIABLE = ("en_GB", "sv_SE", "nb_NO", "da_DK", "fi_FI", "de_DE", "de_CH")


def wording_for(locale_tag: str) -> Wording:
    """The regional wording if there is one, else the language's, else English."""
    language = locale_tag.split("_", 1)[0]
    return WORDINGS.get(locale_tag) or WORDINGS.get(language) or ENGLISH


def negotiate_locale(accept_language: str) -> Locale:
    """The page locale for a request that names no order: the browser's first tag we
    have, by region first ("de-CH"), then by language ("sv" is sv_SE)."""
    for part in accept_language.split(","):
        tag = part.split(";", 1)[0].strip().replace("-", "_").lower()
        language = tag.split("_", 1)[0]
        # "no" (Norwegian) is what many browsers send for Bokmål.
        language = "nb" if language == "no" else language
        exact = [loc for loc in _NEGOTIABLE if loc.lower() == tag]
        same_language = [loc for loc in _NEGOTIABLE if loc.split("_")[0] == language]
        if exact or same_language:
            return Locale.parse((exact or same_language)[0])
    return Locale.parse(DEFAULT_LOCALE)
