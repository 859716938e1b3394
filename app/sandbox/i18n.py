"""English and French text for the Link page and the QuickBooks simulator."""

from __future__ import annotations

from decimal import Decimal

LANGUAGES = ("en", "fr")

MESSAGES: dict[str, tuple[str, str]] = {
    "banner": (
        "Codat sandbox: a local emulator for testing. This is not Codat and no data leaves "
        "this machine.",
        "Bac à sable Codat : un émulateur local pour les tests. Ce n'est pas Codat et aucune "
        "donnée ne quitte cette machine.",
    ),
    "language": ("Language", "Langue"),
    "link.title": (
        "Connect to QuickBooks Online Bank Feeds",
        "Se connecter aux flux bancaires de QuickBooks Online",
    ),
    "link.permissions.lead": (
        "Your bank will share the following with QuickBooks Online through Codat:",
        "Votre banque partagera les éléments suivants avec QuickBooks Online par l'intermédiaire "
        "de Codat :",
    ),
    "link.permissions.accounts": (
        "The names, types and masked numbers of the bank accounts you choose",
        "Le nom, le type et le numéro masqué des comptes bancaires que vous choisissez",
    ),
    "link.permissions.balances": ("Account balances", "Les soldes des comptes"),
    "link.permissions.transactions": (
        "Cleared transactions, from the start date you pick in QuickBooks",
        "Les opérations compensées, à partir de la date de début choisie dans QuickBooks",
    ),
    "link.permissions.revoke": (
        "You can stop sharing at any time by disconnecting the accounts in QuickBooks.",
        "Vous pouvez arrêter le partage à tout moment en déconnectant les comptes dans QuickBooks.",
    ),
    "link.continue": ("Continue", "Continuer"),
    "link.setup.title": (
        "Set up QuickBooks bank feeds",
        "Configurer les flux bancaires QuickBooks",
    ),
    "link.setup.lead": (
        "Get a one-time username and password, then enter them in QuickBooks Online.",
        "Obtenez un nom d'utilisateur et un mot de passe à usage unique, puis saisissez-les "
        "dans QuickBooks Online.",
    ),
    "link.get_credentials": ("Get credentials", "Obtenir les identifiants"),
    "link.credentials.title": ("Your one-time credentials", "Vos identifiants à usage unique"),
    "link.credentials.lead": (
        "Use these once to link your accounts in QuickBooks. They are shown only now.",
        "Utilisez-les une seule fois pour lier vos comptes dans QuickBooks. Ils ne sont "
        "affichés qu'une fois.",
    ),
    "link.username": ("Username", "Nom d'utilisateur"),
    "link.password": ("Password", "Mot de passe"),
    "link.steps.title": ("In QuickBooks Online", "Dans QuickBooks Online"),
    "link.steps.1": (
        "Go to Transactions > Bank transactions and select Link account.",
        "Allez dans Transactions > Opérations bancaires et sélectionnez Lier un compte.",
    ),
    "link.steps.2": ("Find your bank in the list.", "Trouvez votre banque dans la liste."),
    "link.steps.3": (
        "Enter the username and password above.",
        "Saisissez le nom d'utilisateur et le mot de passe ci-dessus.",
    ),
    "link.steps.4": (
        "Choose the accounts to connect and a start date, then select Connect.",
        "Choisissez les comptes à connecter et une date de début, puis sélectionnez Connecter.",
    ),
    "link.open_quickbooks": (
        "Open QuickBooks (sandbox simulator)",
        "Ouvrir QuickBooks (simulateur du bac à sable)",
    ),
    "link.revoke": ("Revoke credentials", "Révoquer les identifiants"),
    "link.revoked": (
        "All credentials for this connection are revoked. Get new ones to link accounts again.",
        "Tous les identifiants de cette connexion sont révoqués. Obtenez-en de nouveaux pour "
        "lier des comptes à nouveau.",
    ),
    "link.expired.title": ("This link has expired", "Ce lien a expiré"),
    "link.expired.body": (
        "For your security, this page only works for one hour. Go back to your bank and "
        "select Connect again.",
        "Pour votre sécurité, cette page ne fonctionne que pendant une heure. Retournez sur le "
        "site de votre banque et sélectionnez de nouveau Connecter.",
    ),
    "hosted.title": ("Codat Link", "Codat Link"),
    "hosted.body": (
        "QuickBooks Online Bank Feeds connects through the connection's own link, not this "
        "page. Go back to your bank and select Connect.",
        "Les flux bancaires de QuickBooks Online se connectent par le lien propre à la "
        "connexion, pas par cette page. Retournez sur le site de votre banque et sélectionnez "
        "Connecter.",
    ),
    "qbo.title": ("QuickBooks Online (sandbox simulator)", "QuickBooks Online (simulateur)"),
    "qbo.sign_in.title": (
        "Link account: sign in to your bank",
        "Lier un compte : connexion à votre banque",
    ),
    "qbo.sign_in.lead": (
        "Enter the one-time username and password from your bank's Get credentials page.",
        "Saisissez le nom d'utilisateur et le mot de passe à usage unique obtenus sur la page "
        "Obtenir les identifiants de votre banque.",
    ),
    "qbo.sign_in": ("Sign in", "Se connecter"),
    "qbo.sign_in.failed": (
        "Those credentials are not valid. They may have been used or revoked: get new ones "
        "from your bank.",
        "Ces identifiants ne sont pas valides. Ils ont peut-être déjà servi ou été révoqués : "
        "obtenez-en de nouveaux auprès de votre banque.",
    ),
    "qbo.session.ended": (
        "Your QuickBooks session has ended. Get new credentials from your bank and sign in again.",
        "Votre session QuickBooks est terminée. Obtenez de nouveaux identifiants auprès de votre "
        "banque et reconnectez-vous.",
    ),
    "qbo.choose.title": ("Choose the accounts to connect", "Choisissez les comptes à connecter"),
    "qbo.choose.none": (
        "There are no accounts waiting to be connected.",
        "Aucun compte n'attend d'être connecté.",
    ),
    "qbo.choose.missing": ("Select at least one account.", "Sélectionnez au moins un compte."),
    "qbo.choose.unavailable": (
        "An account you selected can no longer be connected. Choose again.",
        "Un compte sélectionné ne peut plus être connecté. Choisissez de nouveau.",
    ),
    "qbo.start_date": ("Start date for transactions", "Date de début des opérations"),
    "qbo.start_date.hint": (
        "QuickBooks takes at most 7 days of history.",
        "QuickBooks récupère au plus 7 jours d'historique.",
    ),
    "qbo.start_date.future": (
        "The start date cannot be in the future.",
        "La date de début ne peut pas être dans le futur.",
    ),
    "qbo.start_date.invalid": ("Enter a valid start date.", "Saisissez une date de début valide."),
    "qbo.start_date.clamped": (
        "The start date was moved to {day}: QuickBooks takes at most 7 days of history.",
        "La date de début a été ramenée au {day} : QuickBooks récupère au plus 7 jours "
        "d'historique.",
    ),
    "qbo.connect": ("Connect", "Connecter"),
    "qbo.connected.title": ("Connected", "Connecté"),
    "qbo.connected.accounts": ("Connected accounts", "Comptes connectés"),
    "qbo.connected.none": ("No account is connected.", "Aucun compte n'est connecté."),
    "qbo.feed_from": ("Feed from {day}", "Flux depuis le {day}"),
    "qbo.disconnect": ("Disconnect", "Déconnecter"),
    "qbo.disconnecting": (
        "Disconnecting: your bank will see it by {moment}.",
        "Déconnexion en cours : votre banque la verra d'ici le {moment}.",
    ),
    "qbo.disconnect.requested": (
        "Disconnection requested for {name}.",
        "Déconnexion demandée pour {name}.",
    ),
    "qbo.back_to_bank": ("Back to your bank", "Retour à votre banque"),
    "qbo.review.banking": ("Banking", "Opérations bancaires"),
    "qbo.review.for_review": ("For review", "À examiner"),
    "qbo.review.title": ("For review: {name}", "À examiner : {name}"),
    "qbo.review.lead": (
        "Transactions from your bank as QuickBooks last pulled them. QuickBooks pulls once a "
        "day; select Update to pull now.",
        "Les opérations de votre banque telles que QuickBooks les a récupérées la dernière "
        "fois. QuickBooks les récupère une fois par jour; sélectionnez Mettre à jour pour les "
        "récupérer maintenant.",
    ),
    "qbo.review.last_pull": ("Last updated {moment}", "Dernière mise à jour : {moment}"),
    "qbo.review.update": ("Update", "Mettre à jour"),
    "qbo.review.updated": (
        "Updated: QuickBooks pulled the latest transactions from your bank.",
        "Mise à jour effectuée : QuickBooks a récupéré les dernières opérations de votre banque.",
    ),
    "qbo.review.bank_balance": ("Bank balance", "Solde bancaire"),
    "qbo.review.date": ("Date", "Date"),
    "qbo.review.description": ("Description", "Description"),
    "qbo.review.amount": ("Amount", "Montant"),
    "qbo.review.balance": ("Balance", "Solde"),
    "qbo.review.none": ("No transactions to review.", "Aucune opération à examiner."),
    "qbo.review.unavailable": (
        "This account is not connected in QuickBooks.",
        "Ce compte n'est pas connecté dans QuickBooks.",
    ),
    "qbo.review.back": ("Back to connected accounts", "Retour aux comptes connectés"),
    "qbo.add_more": ("Connect more accounts", "Connecter d'autres comptes"),
}


def translate(lang: str, key: str, **values: object) -> str:
    text = MESSAGES[key][LANGUAGES.index(lang)]
    return text.format(**values) if values else text


def format_money(amount: Decimal, lang: str) -> str:
    """An exact amount, at least to the cent: `-1,234.50` in English, `-1 234,50` in French."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        amount = amount.quantize(Decimal("0.01"))
    text = f"{amount:,f}"
    if lang == "fr":
        text = text.replace(",", "\u202f").replace(".", ",")
    return text


def pick_language(requested: str | None, accept_language: str | None) -> str:
    """`?lang=` wins; otherwise the browser's most preferred of English and French."""
    if requested is not None and requested in LANGUAGES:
        return requested
    best, best_q = "en", 0.0
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        # Earlier entries win ties, as browsers list languages in order of preference.
        score = q - position * 1e-6
        if primary in LANGUAGES and score > best_q:
            best, best_q = primary, score
    return best
