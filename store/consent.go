package store

// ConsentAttribute is the customer attribute a store's integration or import
// sets to false when the customer gave no email-marketing consent; such a
// customer gets transactional email only.
const ConsentAttribute = "accepts_email_marketing"
