"""Support words of other languages in English: a question in German, French, Spanish, Italian,
Portuguese or Dutch against a help center written in English.

Stemming meets "Rückerstattungen" and "Rückerstattung", not "Rückerstattung" and "refund". A
customer who writes in their own language to an English help center ("Wie kann ich nächste
Woche aussetzen?") would otherwise match nothing, or an English word a typo away. This small
table gives, per language, the everyday words of customer support (cancel, refund, invoice,
password, delivery, week, holiday…) with their English equivalents; the index searches these
for a question's word the knowledge base does not use itself. Like ``vocabulary``, it is written
from general support language: no product, no domain.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Container

from bot.knowledge import analysis

# Per language: "foreign words: English words" per line. The foreign words are stemmed with the
# language's stemmer (so inflections meet), the English ones with the English stemmer.
_TABLE = {
    "de": """
        kündigen kündigung stornieren stornierung: cancel
        rückerstattung erstattung erstatten zurückerstatten: refund
        rechnung rechnungen: invoice
        quittung beleg: receipt
        passwort kennwort: password
        konto kundenkonto: account
        anmelden einloggen anmeldung: login log
        lieferung liefern zustellung lieferadresse: delivery
        bestellung bestellen: order
        zahlung bezahlen zahlen bezahlt: payment pay
        karte kreditkarte: card
        preis kosten: price cost
        abo abonnement: subscription
        ändern änderung: change
        löschen: delete
        herunterladen: download
        woche wochen: week
        monat monate: month
        pausieren aussetzen unterbrechen pause: pause
        überspringen auslassen: skip
        urlaub ferien: holiday vacation
        reise reisen: travel trip
        ausland: abroad
        deckung abgedeckt: cover
        adresse: address
        langsam: slow
        fehler: error
        vertrag: contract
        tarif: plan
        gutschein rabatt: voucher discount
        geschenk: gift
        zertifikat: certificate
        zurücksetzen: reset
        vergessen: forgot
        beschädigt kaputt: damaged broken
        fehlt fehlend: missing
        verspätung verspätet: late delay
        telefon handy: phone
        umzug umziehen: move
        daten: data
        termin: appointment
        techniker: engineer technician
        video videos: video
        kurs: course
        mitgliedschaft: membership
    """,
    "fr": """
        annuler résilier résiliation annulation: cancel
        remboursement rembourser remboursé: refund
        facture factures: invoice
        reçu: receipt
        compte: account
        connecter connexion: login log
        livraison livrer livré: delivery
        commande commander: order
        paiement payer payé: payment pay
        carte: card
        prix coût tarif: price cost
        abonnement: subscription
        modifier changer: change
        supprimer: delete
        télécharger: download
        semaine semaines: week
        mois: month
        suspendre pause: pause
        sauter: skip
        vacances: holiday vacation
        voyage voyager: travel trip
        étranger: abroad
        couverture couvert: cover
        adresse: address
        lent lente: slow
        erreur: error
        contrat: contract
        forfait: plan
        réduction promo: discount
        cadeau: gift
        certificat: certificate
        réinitialiser: reset
        oublié: forgot
        endommagé cassé: damaged broken
        manquant manque: missing
        retard: late delay
        téléphone portable: phone
        déménager déménagement: move
        données: data
        technicien: engineer technician
        vidéo vidéos: video
        regarder: watch
        réseau: network offline
        cours: course
    """,
    "es": """
        cancelar cancelación baja: cancel
        reembolso reembolsar devolución devuelvan devolver: refund
        factura facturas: invoice
        recibo: receipt
        contraseña: password
        cuenta: account
        sesión acceder: login log
        entrega envío enviar: delivery
        pedido: order
        pago pagar pagué: payment pay
        tarjeta: card
        precio coste costo: price cost
        suscripción: subscription
        cambiar: change
        eliminar borrar: delete
        descargar: download
        semana semanas: week
        mes meses: month
        pausar pausa: pause
        saltar: skip
        vacaciones: holiday vacation
        viaje viajar viajes: travel trip
        extranjero: abroad
        cobertura cubierto cubrimos cubre: cover
        dirección: address
        lento lenta: slow
        error: error
        contrato: contract
        descuento cupón: discount coupon
        regalo: gift
        certificado: certificate
        restablecer: reset
        olvidé olvidado: forgot
        dañado roto: damaged broken
        falta: missing
        retraso: late delay
        teléfono móvil: phone
        mudanza mudar: move
        datos: data
        cita: appointment
        técnico: engineer technician
        vídeo vídeos videos: video
        empresa: company
        curso: course
    """,
    "it": """
        annullare disdire disdetta: cancel
        rimborso rimborsare rimborsi: refund
        fattura fatture: invoice
        ricevuta: receipt
        password: password
        conto: account
        accedere accesso: login log
        consegna consegnare: delivery
        ordine: order
        pagamento pagare pagato: payment pay
        carta: card
        prezzo costo: price cost
        abbonamento: subscription
        cambiare modificare: change
        eliminare cancellare: delete
        scaricare: download
        settimana settimane: week
        mese mesi: month
        sospendere pausa: pause
        saltare: skip
        vacanza vacanze ferie: holiday vacation
        viaggio viaggiare: travel trip
        estero: abroad
        copertura coperto: cover
        indirizzo: address
        lento lenta: slow
        errore: error
        contratto: contract
        piano: plan
        sconto: discount
        regalo: gift
        certificato: certificate
        reimpostare: reset
        dimenticato: forgot
        danneggiato rotto: damaged broken
        mancante manca: missing
        ritardo: late delay
        telefono: phone
        trasloco: move
        dati: data
        appuntamento: appointment
        tecnico: engineer technician
        corso: course
    """,
    "pt": """
        cancelar cancelamento: cancel
        reembolso reembolsar: refund
        fatura: invoice
        recibo: receipt
        senha: password
        conta: account
        entrar: login log
        entrega: delivery
        pedido encomenda: order
        pagamento pagar: payment pay
        cartão: card
        preço custo: price cost
        assinatura: subscription
        alterar mudar: change
        excluir apagar: delete
        baixar: download
        semana semanas: week
        mês meses: month
        pausar: pause
        pular: skip
        férias: holiday vacation
        viagem viajar: travel trip
        exterior: abroad
        cobertura coberto: cover
        endereço: address
        lento lenta: slow
        erro: error
        contrato: contract
        plano: plan
        desconto cupom: discount coupon
        presente: gift
        certificado: certificate
        redefinir: reset
        esqueci: forgot
        danificado quebrado: damaged broken
        faltando: missing
        atraso: late delay
        telefone celular: phone
        mudança: move
        dados: data
        curso: course
    """,
    "nl": """
        opzeggen annuleren: cancel
        terugbetaling restitutie terugbetalen: refund
        factuur: invoice
        kwitantie: receipt
        wachtwoord: password
        inloggen: login log
        levering bezorging bezorgen: delivery
        bestelling: order
        betaling betalen: payment pay
        kaart: card
        prijs kosten: price cost
        abonnement: subscription
        wijzigen veranderen: change
        verwijderen: delete
        downloaden: download
        week weken: week
        maand: month
        pauzeren: pause
        overslaan: skip
        vakantie: holiday vacation
        reis reizen: travel trip
        buitenland: abroad
        dekking gedekt: cover
        adres: address
        traag langzaam: slow
        fout: error
        korting: discount
        cadeau: gift
        certificaat: certificate
        vergeten: forgot
        beschadigd kapot: damaged broken
        ontbreekt: missing
        vertraging: late delay
        telefoon: phone
        verhuizen verhuizing: move
        gegevens: data
        cursus: course
    """,
}


@functools.lru_cache(maxsize=1)
def _lookup() -> dict[tuple[str, str], tuple[str, ...]]:
    """(language, stem of a foreign word) → the English terms it stands for."""
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for lang, table in _TABLE.items():
        for line in table.strip().splitlines():
            foreign, english = line.split(":")
            terms = tuple(dict.fromkeys(analysis.analyze(english, "en")))
            for word in foreign.split():
                out.setdefault((lang, analysis.stem(word, lang)), terms)
    return out


def english_terms(word: str, lang: str) -> tuple[str, ...]:
    """The English terms a lower-cased ``word`` of language ``lang`` stands for, or none."""
    if lang == "en":
        return ()
    return _lookup().get((lang, analysis.stem(word, lang)), ())


def alternatives(word: str, lang: str, known: Container[str]) -> list[tuple[str, float]]:
    """The English terms of ``word`` the knowledge base uses, sharing one word's weight."""
    found = [t for t in english_terms(word, lang) if t in known]
    return [(t, 1.0 / math.sqrt(len(found))) for t in found]
