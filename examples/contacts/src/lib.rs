//! A CRUD plugin over `contact`: create a contact for an account, list an
//! account's contacts (following the query's pages to the end), update one
//! (optionally only if its ETag still matches) and delete one.
//!
//! Inputs and outputs use friendly names (`first_name`); the rows sent to
//! and read from Dataverse use its column names (`firstname`), mapped by
//! serde.

use dvhost_sdk::{ActionError, Condition, Empty, FilterValue, Table};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The table every action works on.
const CONTACT: &str = "contact";

/// Rows per page when the caller does not say.
const DEFAULT_PAGE_SIZE: u32 = 50;

/// Checks a GUID from the caller; the host checks ids it is given as ids, but
/// the account id also goes inside a row (`@odata.bind`), so it is checked
/// here first.
fn guid(field: &str, text: &str) -> Result<String, ActionError> {
    Uuid::parse_str(text)
        .map(|id| id.hyphenated().to_string())
        .map_err(|error| ActionError::invalid_input(format!("{field} is not a GUID: {error}")))
}

/// Input of `create-contact`.
#[derive(Deserialize, JsonSchema)]
struct CreateContact {
    /// The account the contact works for.
    account_id: String,
    /// Given name.
    #[serde(default)]
    first_name: Option<String>,
    /// Family name.
    last_name: String,
    /// E-mail address.
    #[serde(default)]
    email: Option<String>,
    /// Job title.
    #[serde(default)]
    job_title: Option<String>,
}

/// A new contact row, in Dataverse's column names.
#[derive(Serialize)]
struct ContactRow<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    firstname: Option<&'a str>,
    lastname: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    emailaddress1: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jobtitle: Option<&'a str>,
    /// Sets the `parentcustomerid` lookup to the account.
    #[serde(rename = "parentcustomerid_account@odata.bind")]
    account: String,
}

/// The id of a contact.
#[derive(Serialize, JsonSchema)]
struct Created {
    /// The new contact's id.
    id: String,
}

fn create_contact(input: CreateContact) -> Result<Created, ActionError> {
    let account_id = guid("account_id", &input.account_id)?;
    if input.last_name.trim().is_empty() {
        return Err(ActionError::invalid_input("last_name is empty"));
    }
    let row = ContactRow {
        firstname: input.first_name.as_deref(),
        lastname: &input.last_name,
        emailaddress1: input.email.as_deref(),
        jobtitle: input.job_title.as_deref(),
        account: format!("/accounts({account_id})"),
    };
    let id = Table::new(CONTACT).create(&row)?;
    dvhost_sdk::log::info(&format!("created contact {id} for account {account_id}"));
    Ok(Created { id })
}

/// Input of `list-contacts`.
#[derive(Deserialize, JsonSchema)]
struct ListContacts {
    /// The account whose contacts to list.
    account_id: String,
    /// Contacts per page read from Dataverse (1 to 5000; default 50). Every
    /// page is read: this only changes how many calls it takes.
    #[serde(default)]
    page_size: Option<u32>,
}

/// A contact: read with Dataverse's column names, written with friendly ones.
#[derive(Deserialize, Serialize, JsonSchema)]
struct Contact {
    /// The contact's id.
    #[serde(rename(deserialize = "contactid"))]
    id: String,
    /// Full name, as Dataverse composes it.
    #[serde(rename(deserialize = "fullname"), default)]
    full_name: Option<String>,
    /// Given name.
    #[serde(rename(deserialize = "firstname"), default)]
    first_name: Option<String>,
    /// Family name.
    #[serde(rename(deserialize = "lastname"), default)]
    last_name: Option<String>,
    /// E-mail address.
    #[serde(rename(deserialize = "emailaddress1"), default)]
    email: Option<String>,
    /// ETag of this version, for `update-contact`'s `etag`.
    #[serde(rename(deserialize = "@odata.etag"), default)]
    etag: Option<String>,
}

/// Output of `list-contacts`.
#[derive(Serialize, JsonSchema)]
struct ContactList {
    /// The account's contacts, by family name.
    contacts: Vec<Contact>,
    /// How many pages were read.
    pages: u32,
    /// The number of matching contacts Dataverse counted (up to 5000).
    total: Option<u64>,
}

fn list_contacts(input: ListContacts) -> Result<ContactList, ActionError> {
    let account_id = guid("account_id", &input.account_id)?;
    let query = Table::new(CONTACT)
        .query()
        .select([
            "contactid",
            "fullname",
            "firstname",
            "lastname",
            "emailaddress1",
        ])
        .filter(Condition::eq(
            "_parentcustomerid_value",
            FilterValue::Guid(account_id),
        ))
        // The id last, so rows with equal names keep one order across pages.
        .order_by("lastname")
        .order_by("contactid")
        .page_size(input.page_size.unwrap_or(DEFAULT_PAGE_SIZE))
        .count();
    let mut page = query.run()?;
    let total = page.count();
    let mut contacts = Vec::new();
    let mut pages = 1;
    loop {
        contacts.extend(page.rows_as::<Contact>()?);
        match page.next()? {
            Some(next) => {
                page = next;
                pages += 1;
            }
            None => break,
        }
    }
    Ok(ContactList {
        contacts,
        pages,
        total,
    })
}

/// Input of `update-contact`: the id and at least one column to change.
#[derive(Deserialize, JsonSchema)]
struct UpdateContact {
    /// The contact's id.
    id: String,
    /// New given name.
    #[serde(default)]
    first_name: Option<String>,
    /// New family name.
    #[serde(default)]
    last_name: Option<String>,
    /// New e-mail address.
    #[serde(default)]
    email: Option<String>,
    /// New job title.
    #[serde(default)]
    job_title: Option<String>,
    /// Change only this version (an `etag` from `list-contacts`); a contact
    /// changed since fails with Dataverse's 412.
    #[serde(default)]
    etag: Option<String>,
}

/// The changed columns, in Dataverse's names.
#[derive(Serialize)]
struct ContactChanges<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    firstname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lastname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emailaddress1: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jobtitle: Option<&'a str>,
}

fn update_contact(input: UpdateContact) -> Result<Empty, ActionError> {
    let changes = ContactChanges {
        firstname: input.first_name.as_deref(),
        lastname: input.last_name.as_deref(),
        emailaddress1: input.email.as_deref(),
        jobtitle: input.job_title.as_deref(),
    };
    let nothing = changes.firstname.is_none()
        && changes.lastname.is_none()
        && changes.emailaddress1.is_none()
        && changes.jobtitle.is_none();
    if nothing {
        return Err(ActionError::invalid_input("nothing to change"));
    }
    let contacts = Table::new(CONTACT);
    match &input.etag {
        Some(etag) => contacts.update_if_match(&input.id, &changes, etag)?,
        None => contacts.update(&input.id, &changes)?,
    }
    Ok(Empty {})
}

/// Input of `delete-contact`.
#[derive(Deserialize, JsonSchema)]
struct DeleteContact {
    /// The contact's id.
    id: String,
}

fn delete_contact(input: DeleteContact) -> Result<Empty, ActionError> {
    Table::new(CONTACT).delete(&input.id)?;
    Ok(Empty {})
}

dvhost_sdk::export_actions! {
    /// Creates a contact working for an account; returns its id.
    "create-contact" => create_contact,
    /// Lists an account's contacts by family name, every page of them.
    "list-contacts" => list_contacts,
    /// Changes a contact's names, e-mail or job title; with `etag`, only if
    /// the contact did not change since.
    "update-contact" => update_contact,
    /// Deletes a contact.
    "delete-contact" => delete_contact,
}
