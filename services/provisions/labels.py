"""The principal-facing names of the items of a provision or receipt record.

The items are those the Enforcement Rules ask a record to hold (APPI Art. 29 for a
provision, Art. 30 for a receipt), by the names the provision-ledger connector gives
them (``connectors.provision_ledger.rows``); a letter shows each record as a block of
these labels and values.
"""

from __future__ import annotations

from services.rules.sentence import Sentence

_COMMON = {
    "record_id": Sentence("記録番号", "Record number"),
    "items": Sentence("個人データの項目", "Items of personal data"),
    "basis": Sentence("提供の根拠", "Basis of the provision"),
    "consent": Sentence("本人の同意の有無", "Whether you consented"),
    "cross_border_country": Sentence("外国の名称", "Foreign country"),
    "cross_border_protection_system": Sentence(
        "当該外国の個人情報の保護に関する制度", "That country's system for protecting personal data"
    ),
    "cross_border_recipient_measures": Sentence(
        "提供先が講ずる個人情報の保護のための措置", "The recipient's protective measures"
    ),
    "record_form": Sentence("記録の作成方法", "How the record is kept"),
    "system": Sentence("記録したシステム", "Recorded by"),
    "recorded_at": Sentence("記録日時", "Recorded at"),
    "retain_until": Sentence("保存期限", "Kept until"),
}

#: Table name -> item name -> label. The connector's tables are ``provisions``,
#: ``receipts`` and ``out_of_scope_flows``.
ITEM_LABELS: dict[str, dict[str, Sentence]] = {
    "provisions": {
        "provided_on": Sentence("提供年月日", "Date of provision"),
        "last_provided_on": Sentence("最後に提供した年月日", "Date of the last provision"),
        "recipient": Sentence("第三者の氏名又は名称", "Name of the third party"),
        "recipient_address": Sentence("第三者の住所", "Address of the third party"),
        "recipient_representative": Sentence(
            "第三者の代表者の氏名", "Representative of the third party"
        ),
        "stopped": Sentence("第三者提供の停止", "Provision stopped"),
        **_COMMON,
    },
    "receipts": {
        "received_on": Sentence("受領年月日", "Date of receipt"),
        "last_received_on": Sentence("最後に受領した年月日", "Date of the last receipt"),
        "provider": Sentence("第三者の氏名又は名称", "Name of the third party"),
        "provider_address": Sentence("第三者の住所", "Address of the third party"),
        "provider_representative": Sentence(
            "第三者の代表者の氏名", "Representative of the third party"
        ),
        "acquired_how": Sentence(
            "第三者による個人データの取得の経緯", "How the third party obtained the data"
        ),
        "ppc_publication": Sentence(
            "個人情報保護委員会による公表",
            "Publication by the Personal Information Protection Commission",
        ),
        **_COMMON,
    },
    "out_of_scope_flows": {
        "record_id": Sentence("記録番号", "Record number"),
        "flow": Sentence("提供の類型", "Kind of flow"),
        "label": Sentence("区分", "Category"),
        "reason": Sentence("記録の対象とならない理由", "Why no provision record is kept"),
        "direction": Sentence("提供・受領の別", "Provided or received"),
        "counterparty": Sentence("相手方", "Counterparty"),
        "items": Sentence("個人データの項目", "Items of personal data"),
        "date": Sentence("年月日", "Date"),
    },
}

#: The item that names the principal in each record (本人の氏名等): the records the
#: ledger keeps name nobody, so a letter fills it in with the addressee.
PRINCIPAL = Sentence("本人の氏名その他の本人を特定するに足りる事項", "The principal")

#: Tables of provision and receipt records, whose blocks carry ``PRINCIPAL``.
RECORD_TABLES = frozenset({"provisions", "receipts"})

#: The tables' own names.
TABLE_LABELS = {
    "provisions": Sentence("第三者提供の記録", "Records of provision to third parties"),
    "receipts": Sentence("第三者からの受領の記録", "Records of receipt from third parties"),
    "out_of_scope_flows": Sentence(
        "第三者提供の記録の対象とならない提供", "Flows that are not provisions to third parties"
    ),
}
