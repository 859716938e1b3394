"""The currencies the sandbox accepts in `currency` (Codat's `ISO4217` format): ISO 4217's
current codes for money held in an account, listed here apart from the client's table, so that a
mistake in that table shows as a refusal rather than passing unseen. By first letter."""

ISO_4217 = frozenset(
    " ".join(
        (
            "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN",
            "BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD",
            "CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK",
            "DJF DKK DOP DZD",
            "EGP ERN ETB EUR",
            "FJD FKP",
            "GBP GEL GHS GIP GMD GNF GTQ GYD",
            "HKD HNL HTG HUF",
            "IDR ILS INR IQD IRR ISK",
            "JMD JOD JPY",
            "KES KGS KHR KMF KPW KRW KWD KYD KZT",
            "LAK LBP LKR LRD LSL LYD",
            "MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN",
            "NAD NGN NIO NOK NPR NZD",
            "OMR",
            "PAB PEN PGK PHP PKR PLN PYG",
            "QAR",
            "RON RSD RUB RWF",
            "SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL",
            "THB TJS TMT TND TOP TRY TTD TWD TZS",
            "UAH UGX USD USN UYI UYU UYW UZS",
            "VED VES VND VUV",
            "WST",
            "XAF XCD XCG XOF XPF",
            "YER",
            "ZAR ZMW ZWG ZWL",
        )
    ).split()
)
